package plugin

import (
	"time"
)

// watchdog enforces deadlines: while any instance runs guest code it looks
// at every instance once per tick and marks those past their deadline, so
// that the guest stops at its next fuel check. With nothing in flight it
// holds no timer and sleeps until an arm wakes it: an idle version costs
// no CPU. A deadline is enforced at most one tick late either way, as the
// first tick comes one period after the wake.
func (v *Version) watchdog() {
	tick := v.engine.watchdogTick(v.spec.Timeout)
	for {
		// Announce the sleep, then look at the instances once more: an
		// instance armed after the last tick's look saw asleep false and
		// sent nothing. (arm stores its deadline, then loads asleep; this
		// stores asleep, then loads the deadlines: one side sees the
		// other.)
		v.asleep.Store(true)
		if !v.anyArmed() || !v.asleep.CompareAndSwap(true, false) {
			// Either nothing runs, or an arm flipped asleep after the
			// Store and its wake is on the way: wait for it.
			select {
			case <-v.stopDog:
				return
			case <-v.wake:
			}
		}
		t := time.NewTicker(tick)
		for running := true; running; {
			select {
			case <-v.stopDog:
				t.Stop()
				return
			case <-t.C:
				v.dogWakes.Add(1)
				now := nanotime()
				running = false
				for _, w := range v.all {
					if w != nil && w.checkDeadline(now) {
						running = true
					}
				}
				// Sleep once nothing runs (the loop top looks again, so
				// an instance armed after this pass is not missed).
			}
		}
		t.Stop()
	}
}

// wakeDog wakes the watchdog when it sleeps, after an instance was armed;
// the arm's store before this load pairs with the watchdog's store of
// asleep before it looks at the instances, so one of the two always sees
// the other.
func (v *Version) wakeDog() {
	if v.asleep.Load() && v.asleep.CompareAndSwap(true, false) {
		// Only the winner of the flip sends, and the watchdog takes the
		// token before it can announce another sleep: this never blocks.
		v.wake <- struct{}{}
	}
}

// anyArmed reports whether some instance runs guest code under a deadline.
func (v *Version) anyArmed() bool {
	for _, w := range v.all {
		if w != nil && running(w.deadline.Load()) {
			return true
		}
	}
	return false
}
