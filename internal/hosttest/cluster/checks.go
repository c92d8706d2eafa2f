package cluster

import (
	"fmt"
	"slices"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
)

// Peers is the host's GET /v1/peers.
func (h *Host) Peers() ([]control.PeerInfo, error) {
	if h.Client == nil {
		return nil, fmt.Errorf("host %q: never started", h)
	}
	ctx, cancel := ctx()
	defer cancel()
	ps, err := h.Client.Peers(ctx)
	if err != nil {
		return nil, fmt.Errorf("host %q: peers: %w", h, err)
	}
	return ps, nil
}

// routeTo reports whether a peer of ps that the host can send to (up,
// relayed, or a live member it links to when needed) serves service.
func routeTo(ps []control.PeerInfo, service string) bool {
	for _, p := range ps {
		switch p.State {
		case control.PeerUp, control.PeerRelayed, control.PeerMember:
			if slices.Contains(p.Services, service) {
				return true
			}
		}
	}
	return false
}

// HasRoute returns nil once another host serves service to this one, else
// an error listing what this host sees.
func (h *Host) HasRoute(service string) error {
	ps, err := h.Peers()
	if err != nil {
		return err
	}
	if !routeTo(ps, service) {
		return fmt.Errorf("host %q: no route to service %q (peers: %s)", h, service, peersString(ps))
	}
	return nil
}

// NoRoute returns nil once no other host serves service to this one.
func (h *Host) NoRoute(service string) error {
	ps, err := h.Peers()
	if err != nil {
		return err
	}
	if routeTo(ps, service) {
		return fmt.Errorf("host %q: still has a route to service %q (peers: %s)", h, service, peersString(ps))
	}
	return nil
}

// LinkUp returns nil once the host has a live link to the host named peer.
func (h *Host) LinkUp(peer string) error {
	ps, err := h.Peers()
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Name == peer && p.State == control.PeerUp {
			return nil
		}
	}
	return fmt.Errorf("host %q: no link up to %q (peers: %s)", h, peer, peersString(ps))
}

// NoLink returns nil once the host has no live link to the host named
// peer.
func (h *Host) NoLink(peer string) error {
	ps, err := h.Peers()
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Name == peer && p.State == control.PeerUp {
			return fmt.Errorf("host %q: link to %q still up (peers: %s)", h, peer, peersString(ps))
		}
	}
	return nil
}

// Call calls subject with payload through the host's control API, within
// timeout. The error keeps the call's status (message.StatusOf) and names
// the host.
func (h *Host) Call(subject, payload string, timeout time.Duration) (string, error) {
	if h.Client == nil {
		return "", fmt.Errorf("host %q: never started", h)
	}
	ctx, cancel := ctx()
	defer cancel()
	out, err := h.Client.Call(ctx, subject, []byte(payload), nil, timeout)
	if err != nil {
		return "", fmt.Errorf("host %q: call %s: %w", h, subject, err)
	}
	return string(out), nil
}

// CallOK returns nil if a call of subject with payload answers want.
func (h *Host) CallOK(subject, payload, want string) error {
	out, err := h.Call(subject, payload, 2*time.Second)
	if err != nil {
		return err
	}
	if out != want {
		return fmt.Errorf("host %q: call %s %q answered %q, want %q", h, subject, payload, out, want)
	}
	return nil
}
