package compare

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// loop calls call one at a time until d has passed and at least minCalls
// calls were made. The clock is read every 64 calls only, so that reading
// it does not weigh on calls of a few hundred nanoseconds.
func loop(d time.Duration, minCalls int, call func() error) (Sample, error) {
	return around(func() (int, error) {
		end := time.Now().Add(d)
		n := 0
		for {
			for range 64 {
				if err := call(); err != nil {
					return n, err
				}
			}
			n += 64
			if n >= minCalls && time.Now().After(end) {
				return n, nil
			}
		}
	})
}

// PluginCalls holds the in-process plugin-call contenders: our runtime
// (deadline enforced), waPC and the bare-wazero floor, all running the same
// guest handler function (TestHandleBodiesIdentical).
type PluginCalls struct {
	Ours, WAPC, Floor Caller
}

// Names of the in-process contenders.
const (
	cOurs  = "ours"
	cWAPC  = "waPC"
	cFloor = "floor"
)

// StartPluginCalls loads the three contenders; root is the repository root.
func StartPluginCalls(root string) (_ *PluginCalls, err error) {
	echo, err := os.ReadFile(filepath.Join(root, EchoWATPath))
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	pc := &PluginCalls{}
	defer func() {
		if err != nil {
			pc.Close()
		}
	}()
	if pc.Ours, err = NewOurs(echo); err != nil {
		return nil, err
	}
	if pc.WAPC, err = NewWAPC(wapcEchoWasm); err != nil {
		return nil, err
	}
	if pc.Floor, err = NewFloor(echo); err != nil {
		return nil, err
	}
	return pc, nil
}

// Close closes every contender.
func (pc *PluginCalls) Close() {
	for _, c := range []Caller{pc.Ours, pc.WAPC, pc.Floor} {
		if c != nil {
			c.Close()
		}
	}
}

// Measure times sequential calls at size bytes, d per contender and round,
// after checking that each one replies with the payload upper-cased.
func (pc *PluginCalls) Measure(size, rounds int, d time.Duration) ([]Row, error) {
	pl := payload(size)
	var cs []contender
	for _, nc := range []struct {
		name string
		c    Caller
	}{{cOurs, pc.Ours}, {cWAPC, pc.WAPC}, {cFloor, pc.Floor}} {
		name, c := nc.name, nc.c
		if err := checkEcho(name, c.Call, pl); err != nil {
			return nil, err
		}
		call := func() error { _, err := c.Call(pl); return err }
		if _, err := loop(10*time.Millisecond, 64, call); err != nil {
			return nil, fmt.Errorf("compare: warming %s: %w", name, err)
		}
		cs = append(cs, contender{name, func() (Sample, error) { return loop(d, 1000, call) }})
	}
	s, err := interleave(rounds, cs)
	if err != nil {
		return nil, err
	}
	fig := fmt.Sprintf("in-process plugin call, %s (time per call)", SizeName(size))
	return []Row{
		withUnit(row("x_floor", fig, s, cOurs, cFloor, "bare-wazero floor", nsPerCall), "ns/call"),
		row("x_wapc", fig, s, cOurs, cWAPC, "waPC (no deadline)", nsPerCall),
	}, nil
}
