package queue

import (
	"encoding/binary"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Redrive moves every dead letter of queue name back into the queue, in
// id order behind what waits there, with its attempts reset: for when the
// consumer's fault is fixed. It returns how many it moved.
func (s *Store) Redrive(name string) (int, error) {
	q, err := s.deadQueue(name)
	if err != nil {
		return 0, err
	}
	var moved []uint64
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(rootBucket).Bucket([]byte(name))
		d, m := b.Bucket(deadBucket), b.Bucket(msgBucket)
		c := d.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var r record
			if err := cbor.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("dead letter %x: %w", k, err)
			}
			r.Attempts, r.LastError, r.DeadAt = 0, "", 0
			rec, err := cbor.Marshal(r)
			if err != nil {
				return err
			}
			if err := m.Put(k, rec); err != nil {
				return err
			}
			moved = append(moved, binary.BigEndian.Uint64(k))
		}
		// Deleting under a cursor skips keys: drop the bucket at once.
		if err := b.DeleteBucket(deadBucket); err != nil {
			return err
		}
		_, err := b.CreateBucket(deadBucket)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("redrive queue %q: %w", name, err)
	}
	q.mu.Lock()
	q.dead -= len(moved)
	q.depth += len(moved)
	for _, seq := range moved {
		delete(q.attempts, seq)
		q.ready.push(seq)
	}
	q.mu.Unlock()
	q.poke()
	return len(moved), nil
}

// PurgeDead deletes every dead letter of queue name and returns how many
// it deleted.
func (s *Store) PurgeDead(name string) (int, error) {
	q, err := s.deadQueue(name)
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(rootBucket).Bucket([]byte(name))
		n = b.Bucket(deadBucket).Stats().KeyN
		if err := b.DeleteBucket(deadBucket); err != nil {
			return err
		}
		_, err := b.CreateBucket(deadBucket)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge the dead letters of queue %q: %w", name, err)
	}
	q.mu.Lock()
	q.dead -= n
	q.mu.Unlock()
	return n, nil
}

// deadQueue returns queue name, loaded, when the file has it.
func (s *Store) deadQueue(name string) (*Queue, error) {
	exists := false
	s.db.View(func(tx *bolt.Tx) error {
		exists = tx.Bucket(rootBucket).Bucket([]byte(name)) != nil
		return nil
	})
	if !exists {
		return nil, message.Errorf(abi.StatusNoHandler, "no queue %q on this host", name)
	}
	return s.Queue(name)
}
