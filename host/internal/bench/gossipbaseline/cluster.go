package gossipbaseline

import (
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// pollEvery is how often WaitConverged and WaitDead look at the members; the
// durations they return have this resolution.
const pollEvery = 5 * time.Millisecond

// Minimum accepted Options.DeadAfter: below it ProbeInterval/2 would fall
// under the 50ms floor of ProbeTimeout and reach ProbeInterval itself.
const minDeadAfter = 500 * time.Millisecond

// Options for a cluster.
type Options struct {
	// N is the number of members, at least 1.
	N int

	// DeadAfter is the target failure-detection time: how long after a
	// member is killed the others should, on average, have declared it
	// dead. Zero keeps memberlist.DefaultLANConfig()'s timings untouched
	// (ProbeInterval 1s, ProbeTimeout 500ms, SuspicionMult 4); otherwise it
	// must be at least 500ms and maps, starting from DefaultLANConfig(), to:
	//
	//   - ProbeInterval = DeadAfter/5;
	//   - ProbeTimeout = ProbeInterval/2, but at least 50ms;
	//   - SuspicionMult = floor(2 / max(1, log10(N))), clamped to [1, 4]:
	//     1 or 2 for any N >= 2 (2 up to N = 10, 1 above).
	//
	// Why that SuspicionMult: a dead member is declared dead after (a)
	// waiting for some member's round-robin probe to reach it, about one
	// ProbeInterval on average, (b) a failed probe round (direct probe, then
	// indirect probes through IndirectChecks peers) which takes the rest of
	// that ProbeInterval, (c) the suspicion timeout, and (d) gossip of the
	// "dead" message (GossipInterval 200ms, 3 peers per round, about log3(N)
	// rounds) plus scheduling slack, for which one ProbeInterval is
	// reserved. That leaves 2 of the 5 intervals to (c). memberlist's
	// suspicion timeout is at least SuspicionMult * max(1, log10(N)) *
	// ProbeInterval, so the default SuspicionMult 4 alone would take 4+
	// intervals and detection would overshoot DeadAfter by a fifth or more;
	// it is lowered until (c) fits in 2 intervals (it cannot go below 1).
	// Note that with SuspicionMult <= 2 memberlist expects k =
	// SuspicionMult-2 <= 0 independent confirmations of a suspicion, so the
	// suspicion timeout is exactly that minimum: Lifeguard's
	// confirmation-driven shortening (from SuspicionMaxTimeoutMult times the
	// minimum) plays no part, and its protection against false positives is
	// weaker than with the defaults. On a loopback link without loss that
	// costs nothing; the trade-off is reported rather than hidden. Every
	// other setting (GossipInterval 200ms, GossipNodes 3, PushPullInterval
	// 30s, RetransmitMult 4, IndirectChecks 3, compression on) stays at the
	// LAN default.
	DeadAfter time.Duration

	// Logger receives memberlist's log output, each line prefixed with the
	// member's name. Writes to it are serialized. Nil means io.Discard.
	Logger io.Writer
}

// config returns member i's memberlist configuration, without transport.
func (o Options) config(i int) *memberlist.Config {
	conf := memberlist.DefaultLANConfig()
	conf.Name = memberName(i)
	if o.DeadAfter > 0 {
		conf.ProbeInterval = o.DeadAfter / 5
		conf.ProbeTimeout = max(conf.ProbeInterval/2, 50*time.Millisecond)
		conf.SuspicionMult = suspicionMult(o.N)
	}
	return conf
}

// suspicionMult is the SuspicionMult documented on Options.DeadAfter.
func suspicionMult(n int) int {
	scale := math.Max(1, math.Log10(float64(n)))
	return min(max(int(2/scale), 1), 4)
}

func memberName(i int) string { return "m" + strconv.Itoa(i) }

// Cluster is a running memberlist cluster on 127.0.0.1. Its methods are safe
// for concurrent use.
type Cluster struct {
	start time.Time // just before member 0 was created

	mu         sync.Mutex
	members    []*memberlist.Memberlist // index i is member "m<i>"
	transports []*countingTransport     // kept after Kill/Leave for Bytes
	down       []bool                   // killed, left or closed
	downAt     []time.Time              // when Kill or Leave was called
}

// Start starts o.N members on 127.0.0.1, named "m0".."m<N-1>". Each member
// gets its own port, used for both TCP and UDP: memberlist's NetTransport
// listens on TCP port 0 and binds UDP to the port the kernel chose, and we
// retry with a fresh port when that UDP port is taken; the port is then
// advertised explicitly. Members are started one after another, and each
// one, as soon as it runs, joins member 0 (the seed), which is a TCP
// push/pull of the seed's state. Start returns when every member has joined;
// use WaitConverged to wait for the membership to spread. On error, the
// members already started are shut down.
func Start(o Options) (*Cluster, error) {
	if o.N < 1 {
		return nil, fmt.Errorf("gossipbaseline: N = %d, need at least 1", o.N)
	}
	if o.DeadAfter < 0 || (o.DeadAfter > 0 && o.DeadAfter < minDeadAfter) {
		return nil, fmt.Errorf("gossipbaseline: DeadAfter = %v, need 0 or at least %v", o.DeadAfter, minDeadAfter)
	}
	var w io.Writer = io.Discard
	if o.Logger != nil {
		w = &lockedWriter{w: o.Logger}
	}
	c := &Cluster{}
	c.start = time.Now()
	var seed string
	for i := range o.N {
		logger := log.New(w, memberName(i)+" ", log.LstdFlags|log.Lmicroseconds)
		t, err := newCountingTransport(logger)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("gossipbaseline: member %d: %w", i, err)
		}
		conf := o.config(i)
		conf.BindAddr = "127.0.0.1"
		conf.BindPort = t.port
		conf.AdvertiseAddr = "127.0.0.1"
		conf.AdvertisePort = t.port
		conf.Transport = t
		conf.Logger = logger
		ml, err := memberlist.Create(conf)
		if err != nil {
			_ = t.Shutdown()
			c.Close()
			return nil, fmt.Errorf("gossipbaseline: member %d: %w", i, err)
		}
		c.mu.Lock()
		c.members = append(c.members, ml)
		c.transports = append(c.transports, t)
		c.down = append(c.down, false)
		c.downAt = append(c.downAt, time.Time{})
		c.mu.Unlock()
		if i == 0 {
			seed = net.JoinHostPort("127.0.0.1", strconv.Itoa(t.port))
			continue
		}
		if _, err := ml.Join([]string{seed}); err != nil {
			c.Close()
			return nil, fmt.Errorf("gossipbaseline: member %d joining the seed %s: %w", i, seed, err)
		}
	}
	return c, nil
}

// live returns the members that are neither killed, left nor closed, with
// their indices.
func (c *Cluster) live() ([]int, []*memberlist.Memberlist) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var idx []int
	var ms []*memberlist.Memberlist
	for i, m := range c.members {
		if !c.down[i] {
			idx = append(idx, i)
			ms = append(ms, m)
		}
	}
	return idx, ms
}

// WaitConverged waits until every running member counts exactly the running
// members as alive (NumMembers() == N as long as no member was killed or
// left), checking every 5ms, for up to timeout. It returns the time from just
// before Start created the first member to the check that saw convergence,
// so call it right after Start to measure the time to converge.
//
// memberlist spreads each join by gossip with a bounded number of
// retransmissions, so now and then a member misses one and only learns of it
// at its next TCP push/pull, which memberlist first runs a random 0-30s plus
// one PushPullInterval (30s, doubled above 32 members) after the member
// started. At N = 50 about one run in six converges in 60-80s rather than
// about 1s; at N = 10 none in 200 runs took over 3s.
func (c *Cluster) WaitConverged(timeout time.Duration) (time.Duration, error) {
	var (
		idx []int
		ms  []*memberlist.Memberlist
	)
	ok := poll(timeout, func() bool {
		idx, ms = c.live()
		for _, m := range ms {
			if m.NumMembers() != len(ms) {
				return false
			}
		}
		return true
	})
	if !ok {
		return 0, fmt.Errorf("gossipbaseline: not converged after %v: %s", timeout, describeViews(idx, ms))
	}
	return time.Since(c.start), nil
}

// describeViews says, for each running member whose view is not exactly the
// running members, which running members it lacks and which others it lists.
func describeViews(idx []int, ms []*memberlist.Memberlist) string {
	want := make(map[string]bool, len(idx))
	for _, i := range idx {
		want[memberName(i)] = true
	}
	var b strings.Builder
	for k, m := range ms {
		seen := make(map[string]bool)
		var extra []string
		for _, n := range m.Members() {
			seen[n.Name] = true
			if !want[n.Name] {
				extra = append(extra, n.Name)
			}
		}
		var missing []string
		for _, i := range idx {
			if !seen[memberName(i)] {
				missing = append(missing, memberName(i))
			}
		}
		if len(missing)+len(extra) > 0 {
			fmt.Fprintf(&b, "; %s lacks %v, has extra %v", memberName(idx[k]), missing, extra)
		}
	}
	return fmt.Sprintf("%d running members%s", len(idx), b.String())
}

// Bytes returns the total bytes sent so far by all members, including
// members since killed or left: UDP payloads plus bytes written on TCP
// streams (dialed and accepted), not counting IP/UDP/TCP headers.
func (c *Cluster) Bytes() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum uint64
	for _, t := range c.transports {
		sum += t.Sent()
	}
	return sum
}

// takeDown marks member i down and returns it, or fails if i is out of range
// or already down.
func (c *Cluster) takeDown(i int) (*memberlist.Memberlist, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.members) {
		return nil, fmt.Errorf("gossipbaseline: no member %d", i)
	}
	if c.down[i] {
		return nil, fmt.Errorf("gossipbaseline: member %d is already down", i)
	}
	c.down[i] = true
	c.downAt[i] = time.Now()
	return c.members[i], nil
}

// Kill stops member i abruptly, like a killed process: memberlist's
// Shutdown without Leave, so the others get no goodbye and must detect the
// failure by probing.
func (c *Cluster) Kill(i int) error {
	m, err := c.takeDown(i)
	if err != nil {
		return err
	}
	return m.Shutdown()
}

// Leave makes member i leave cleanly: memberlist's Leave(timeout), which
// broadcasts its departure and waits up to timeout for the broadcast to go
// out, then Shutdown. WaitDead measures from the call to Leave.
func (c *Cluster) Leave(i int, timeout time.Duration) error {
	m, err := c.takeDown(i)
	if err != nil {
		return err
	}
	lerr := m.Leave(timeout)
	return errors.Join(lerr, m.Shutdown())
}

// WaitDead waits, checking every 5ms for up to timeout, until no running
// member lists member i (which must have been killed or left) in Members()
// any more, i.e. every one of them has it as dead or left. A member that is
// merely suspected still counts as alive, as it does for memberlist itself
// (it stays in Members() and NumMembers()). It returns the time from the
// call to Kill or Leave to the check that saw it.
func (c *Cluster) WaitDead(i int, timeout time.Duration) (time.Duration, error) {
	c.mu.Lock()
	if i < 0 || i >= len(c.members) {
		c.mu.Unlock()
		return 0, fmt.Errorf("gossipbaseline: no member %d", i)
	}
	if !c.down[i] || c.downAt[i].IsZero() {
		c.mu.Unlock()
		return 0, fmt.Errorf("gossipbaseline: member %d was neither killed nor left", i)
	}
	at := c.downAt[i]
	c.mu.Unlock()

	name := memberName(i)
	var seers []int
	ok := poll(timeout, func() bool {
		seers = seers[:0]
		idx, ms := c.live()
		for k, m := range ms {
			// Only Name is read: the *Node values point into
			// memberlist's state, and their other fields change under
			// its lock.
			for _, n := range m.Members() {
				if n.Name == name {
					seers = append(seers, idx[k])
					break
				}
			}
		}
		return len(seers) == 0
	})
	if !ok {
		return 0, fmt.Errorf("gossipbaseline: member %d still listed after %v by members %v", i, timeout, seers)
	}
	return time.Since(at), nil
}

// Close shuts every running member down (Shutdown, no Leave). It is
// idempotent; Bytes still works afterwards.
func (c *Cluster) Close() {
	c.mu.Lock()
	var ms []*memberlist.Memberlist
	for i, m := range c.members {
		if !c.down[i] {
			c.down[i] = true
			ms = append(ms, m)
		}
	}
	c.mu.Unlock()
	for _, m := range ms {
		_ = m.Shutdown()
	}
}

// poll calls cond now and then every pollEvery until it returns true (poll
// returns true) or timeout has passed (poll returns false).
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		<-tick.C
	}
}

// lockedWriter serializes writes of the members' loggers to one io.Writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
