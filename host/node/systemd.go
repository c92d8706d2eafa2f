package node

import (
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// systemd service notifications (sd_notify), sent when Options.Systemd is
// set and the service manager gave the process a NOTIFY_SOCKET: READY=1
// once the node serves (Start), RELOADING=1 then READY=1 around a config
// reload, STOPPING=1 when a stop begins (Drain or Close), and WATCHDOG=1
// at half of WATCHDOG_USEC when the unit sets WatchdogSec=.
//
// github.com/coreos/go-systemd/v22/daemon speaks the protocol (one
// datagram per state on the unixgram socket, abstract socket names
// included) rather than code of our own: it is the library systemd's own
// Go users take, small, and without dependencies.
//
// RELOADING=1 carries MONOTONIC_USEC: systemd 252 (Debian 12) does not
// read it (its service manager knows RELOADING=1 but no MONOTONIC_USEC),
// and from systemd 253 on a unit of Type=notify-reload requires it, so
// the same binary works under both.

const (
	sdReady     = daemon.SdNotifyReady
	sdStopping  = daemon.SdNotifyStopping
	sdReloading = daemon.SdNotifyReloading
	sdWatchdog  = daemon.SdNotifyWatchdog
)

// notifyWait bounds how long a notification may hold up the node. A
// datagram write to the notify socket blocks while the socket's queue is
// full (a service manager that stopped reading), and SdNotify sets no
// deadline: the node must still start, reload and stop.
const notifyWait = time.Second

// notify sends state to the service manager when the node is a systemd
// service. A failure, or a write still blocked after notifyWait (it then
// finishes or fails in the background, and notifications meanwhile are
// skipped), is logged at debug level only: the node cannot help a service
// manager that stopped listening.
func (n *Node) notify(state string) {
	if !n.opts.Systemd {
		return
	}
	if state == sdReloading {
		state += "\n" + strings.TrimSpace(daemon.SdNotifyMonotonicUsec())
	}
	// One write at a time, in order: a later one waits for the one
	// before, and is skipped when that stays blocked (it would block
	// too), which keeps the goroutines blocked in a write to one.
	timeout := time.NewTimer(notifyWait)
	defer timeout.Stop()
	select {
	case n.notifying <- struct{}{}:
	case <-timeout.C:
		n.logger.Debug("systemd notification skipped: the one before is still blocked", "state", state)
		return
	}
	sent := make(chan error, 1)
	go func() {
		_, err := daemon.SdNotify(false, state)
		<-n.notifying
		sent <- err
	}()
	select {
	case err := <-sent:
		if err != nil {
			n.logger.Debug("systemd notification not sent", "state", state, "err", err)
		}
	case <-timeout.C:
		n.logger.Debug("systemd notification still blocked; not waiting for it", "state", state, "after", notifyWait)
	}
}

// startWatchdog pings the service manager's watchdog at half of
// WATCHDOG_USEC, until stop is closed. Each ping first reads the node's
// health, which takes the node's and every plugin's lock, so a node that
// deadlocks stops pinging and systemd restarts it.
func (n *Node) startWatchdog() {
	if !n.opts.Systemd {
		return
	}
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.logger.Warn("systemd watchdog: WATCHDOG_USEC or WATCHDOG_PID is malformed; not pinging", "err", err)
		return
	}
	if every <= 0 {
		return
	}
	every /= 2
	n.logger.Info("systemd watchdog on", "ping_every", every)
	n.watchdogStop = make(chan struct{})
	n.watchdogDone = make(chan struct{})
	go func() {
		defer close(n.watchdogDone)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-n.watchdogStop:
				return
			case <-t.C:
				_ = n.Health()
				n.notify(sdWatchdog)
			}
		}
	}()
}

// stopWatchdog ends the pings (Close).
func (n *Node) stopWatchdog() {
	if n.watchdogStop != nil {
		close(n.watchdogStop)
		<-n.watchdogDone
		n.watchdogStop = nil
	}
}
