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
	// Redrive moves every dead letter of queue name back into the queue
	// with its attempts reset, and PurgeDead deletes them; both return how
	// many, and no_handler when the node keeps no such queue.
	Redrive(name string) (int, error)
	PurgeDead(name string) (int, error)
}

// DeadLettersResult answers POST /v1/queues/{name}/redrive (Moved) and
// DELETE /v1/queues/{name}/dead (Deleted).
type DeadLettersResult struct {
	Moved   int `json:"moved,omitempty"`
	Deleted int `json:"deleted,omitempty"`
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

func (s *Server) handleRedrive(w http.ResponseWriter, r *http.Request) {
	s.deadLettersOp(w, r, func(q Queuer, name string) (DeadLettersResult, error) {
		n, err := q.Redrive(name)
		return DeadLettersResult{Moved: n}, err
	})
}

func (s *Server) handlePurgeDead(w http.ResponseWriter, r *http.Request) {
	s.deadLettersOp(w, r, func(q Queuer, name string) (DeadLettersResult, error) {
		n, err := q.PurgeDead(name)
		return DeadLettersResult{Deleted: n}, err
	})
}

func (s *Server) deadLettersOp(w http.ResponseWriter, r *http.Request, op func(Queuer, string) (DeadLettersResult, error)) {
	q, ok := s.backend.(Queuer)
	if !ok {
		s.writeError(w, r, message.Errorf(abi.StatusNoHandler, "this node keeps no queues"))
		return
	}
	res, err := op(q, r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, res)
}

// Redrive moves every dead letter of queue name back into the queue and
// returns how many it moved.
func (c *Client) Redrive(ctx context.Context, name string) (int, error) {
	var out DeadLettersResult
	op := fmt.Sprintf("redrive %q", name)
	resp, err := c.do(ctx, op, http.MethodPost, "/v1/queues/"+url.PathEscape(name)+"/redrive", "", nil, nil, nil)
	if err != nil {
		return 0, err
	}
	if err := c.decode(ctx, op, resp, &out); err != nil {
		return 0, err
	}
	return out.Moved, nil
}

// PurgeDead deletes every dead letter of queue name and returns how many
// it deleted.
func (c *Client) PurgeDead(ctx context.Context, name string) (int, error) {
	var out DeadLettersResult
	op := fmt.Sprintf("purge the dead letters of %q", name)
	resp, err := c.do(ctx, op, http.MethodDelete, "/v1/queues/"+url.PathEscape(name)+"/dead", "", nil, nil, nil)
	if err != nil {
		return 0, err
	}
	if err := c.decode(ctx, op, resp, &out); err != nil {
		return 0, err
	}
	return out.Deleted, nil
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
