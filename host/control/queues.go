package control

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Queuer is implemented by a Backend that keeps durable queues
// (abi/SPEC.md section 15): GET /v1/queues lists them and GET
// /v1/queues/{name}/dead shows a queue's dead letters. It is optional; a
// Backend without it answers both with an empty list and no_handler.
type Queuer interface {
	// Queues describes every queue the node keeps, sorted by name.
	Queues() []QueueInfo
	// DeadLetters returns up to limit dead letters of queue name, oldest
	// first; no_handler when the node keeps no such queue.
	DeadLetters(name string, limit int) ([]DeadLetter, error)
}

// QueueInfo describes one durable queue on a node, as listed by GET
// /v1/queues. Counters count since the node started.
type QueueInfo struct {
	Name string `json:"name"`
	// Consumer is the plugin that consumes the queue; "" when none does
	// now (the messages wait on disk).
	Consumer string `json:"consumer,omitempty"`
	// Depth is every message held: Ready (due now), Delayed (waiting out
	// a back-off after a failed delivery) and InFlight (being delivered).
	Depth    int `json:"depth"`
	Ready    int `json:"ready"`
	Delayed  int `json:"delayed"`
	InFlight int `json:"in_flight"`
	// Dead is the number of dead letters kept.
	Dead         int    `json:"dead"`
	Enqueued     uint64 `json:"enqueued"`
	Delivered    uint64 `json:"delivered"`
	Acked        uint64 `json:"acked"`
	Retried      uint64 `json:"retried"`
	DeadLettered uint64 `json:"dead_lettered"`
}

// DeadLetter is a message that failed queues.max_attempts deliveries, as
// GET /v1/queues/{name}/dead shows it. Payload is base64 in JSON.
type DeadLetter struct {
	ID        uint64            `json:"id"`
	Subject   string            `json:"subject"`
	Enqueued  time.Time         `json:"enqueued"`
	Died      time.Time         `json:"died"`
	Attempts  uint32            `json:"attempts"`
	LastError string            `json:"last_error"`
	Headers   map[string]string `json:"headers,omitempty"`
	Payload   []byte            `json:"payload"`
}

// DefaultDeadLetters and MaxDeadLetters bound ?limit= of GET
// /v1/queues/{name}/dead.
const (
	DefaultDeadLetters = 100
	MaxDeadLetters     = 10_000
)

func (s *Server) handleQueues(w http.ResponseWriter, r *http.Request) {
	list := []QueueInfo{}
	if q, ok := s.backend.(Queuer); ok {
		if l := q.Queues(); l != nil {
			list = l
		}
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

func (s *Server) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit := DefaultDeadLetters
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxDeadLetters {
			s.writeError(w, r, message.Errorf(abi.StatusInvalid, "limit %q: want a whole number from 1 to %d", v, MaxDeadLetters))
			return
		}
		limit = n
	}
	q, ok := s.backend.(Queuer)
	if !ok {
		s.writeError(w, r, message.Errorf(abi.StatusNoHandler, "this node keeps no queues"))
		return
	}
	list, err := q.DeadLetters(name, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []DeadLetter{}
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

// Queues lists the durable queues the node keeps.
func (c *Client) Queues(ctx context.Context) ([]QueueInfo, error) {
	var out []QueueInfo
	if err := c.get(ctx, "queues", "/v1/queues", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeadLetters returns up to limit dead letters of queue name (0: the
// server's default).
func (c *Client) DeadLetters(ctx context.Context, name string, limit int) ([]DeadLetter, error) {
	path := "/v1/queues/" + url.PathEscape(name) + "/dead"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out []DeadLetter
	if err := c.get(ctx, fmt.Sprintf("dead letters of %q", name), path, &out); err != nil {
		return nil, err
	}
	return out, nil
}
