package plugin

import (
	"context"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Post queues a send or event without waiting for it to be handled.
func (v *Version) Post(m *message.Message) error {
	if !v.acquire() {
		return errRetired
	}
	if v.posts.put(m) {
		return nil // released by the deliverer
	}
	v.release()
	return message.Errorf(abi.StatusBusy, "plugin %q is busy: %d messages queued", v.spec.Name, v.spec.Queue)
}

// deliverPosts runs the sends and events queued by Post, one at a time
// (see deliverBatches for plugins that take them in batches).
func (v *Version) deliverPosts() {
	defer v.wg.Done()
	var one []*message.Message
	for {
		var ok bool
		if one, ok = v.posts.take(one[:0], 1); !ok {
			return
		}
		v.deliverOne(one[0])
		one[0] = nil
	}
}

// deliverOne runs one queued message through pycomms_handle and releases
// its queue reference.
func (v *Version) deliverOne(m *message.Message) {
	defer v.release()
	dl := v.deadline(m)
	w, err := v.checkout(context.Background(), m, dl)
	if err == nil {
		_, err = v.run(w, m, dl)
	} else {
		v.calls.Add(1)
		v.errors.Add(1)
	}
	if err != nil {
		v.engine.logger.Warn("plugin failed to handle message", "plugin", v.spec.Name, "kind", m.Kind.String(), "subject", m.Subject, "err", err)
	}
}
