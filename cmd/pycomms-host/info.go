package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
)

// nodeVersionTimeout bounds how long `version` waits for the node: it must
// print the CLI's own version promptly even when the address is a black hole.
const nodeVersionTimeout = 3 * time.Second

func (a *cli) newPluginsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List the node's plugins",
		Long: `Plugins prints a table of the node's plugins: name, kind, version (a short
hash of the .wasm file), instances, calls, errors and state, plus an ERROR
column when some plugin's last load or reload failed. Transport plugins get
a second table: what each reaches (dial entries, accept addresses), its
open connections, bytes and messages in and out, messages dropped, refused
actions (ERRORS), reconnects of dial entries and instance failures; then
one row per open connection. --json prints every field.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plugins, err := a.client().Plugins(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if plugins == nil {
					plugins = []control.PluginInfo{}
				}
				return writeJSON(a.stdout, plugins, true)
			}
			return a.printPlugins(plugins)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *cli) printPlugins(plugins []control.PluginInfo) error {
	withErr := false
	for _, p := range plugins {
		withErr = withErr || p.Error != ""
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	cols := []string{"NAME", "KIND", "VERSION", "INSTANCES", "CALLS", "ERRORS", "STATE"}
	if withErr {
		cols = append(cols, "ERROR")
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, p := range plugins {
		row := []string{p.Name, p.Kind, orDash(p.Version), fmt.Sprint(p.Instances),
			fmt.Sprint(p.Calls), fmt.Sprint(p.Errors), orDash(string(p.State))}
		if withErr {
			// One line per plugin: a multi-line error would break the table.
			row = append(row, orDash(strings.Join(strings.Fields(p.Error), " ")))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return a.printTransports(plugins)
}

// printTransports prints, below the plugins table, what each transport
// plugin reaches with its counters, then its open connections.
func (a *cli) printTransports(plugins []control.PluginInfo) error {
	var ts []control.PluginInfo
	for _, p := range plugins {
		if p.Transport != nil {
			ts = append(ts, p)
		}
	}
	if len(ts) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTRANSPORT\tREACHES\tCONNS\tBYTES_IN\tBYTES_OUT\tMSGS_IN\tMSGS_OUT\tDROPPED\tERRORS\tRECONNECTS\tFAILURES")
	for _, p := range ts {
		t := p.Transport
		var reach []string
		for _, d := range t.Dial {
			reach = append(reach, "dial "+d)
		}
		for _, l := range t.Listening {
			reach = append(reach, "accept "+l)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", p.Name, orDash(strings.Join(reach, ", ")), len(t.Conns),
			t.BytesIn, t.BytesOut, t.MessagesIn, t.MessagesOut, t.Dropped, t.Errors, t.Reconnects, t.InstanceFailures)
	}
	conns := false
	for _, p := range ts {
		for _, c := range p.Transport.Conns {
			if !conns {
				fmt.Fprintln(tw, "\nTRANSPORT\tCONN\tENTRY\tREMOTE\tINSTANCE\tBYTES_IN\tBYTES_OUT\tSINCE")
				conns = true
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\n", p.Name, c.ID, c.Entry, c.Remote, c.Instance, c.BytesIn, c.BytesOut,
				c.Since.UTC().Format(time.RFC3339))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func (a *cli) newPeersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the mesh hosts the node knows",
		Long: `Peers prints a table of the hosts the node knows in its mesh: name, id (the
first 12 characters), state, how it was found (configured, mdns, gossip,
inbound, relayed), transport, remote address, round-trip time, messages in
and out, messages dropped, and a NOTE: the relaying node of a relayed host,
how many links away a member is, since when a host is lost or left, the
configured peer URL, the last connection error. --json prints every field.

States: up, leaving, connecting, retrying, stopped (links and configured
peers); relayed (reached through a direct peer); member (a live host
further away, linked to when a message needs it); lost (no chain of live
links reaches it any more); left (it said goodbye).
A node that is not part of a mesh (it accepts no links, has no peers, runs
no mDNS and knows no other host) exits 2.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			peers, err := a.client().Peers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if peers == nil {
					peers = []control.PeerInfo{}
				}
				return writeJSON(a.stdout, peers, true)
			}
			return a.printPeers(peers)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// peerIDWidth is how much of a node id the peers table shows: enough to
// tell nodes apart and to use as an id prefix with --node.
const peerIDWidth = 12

func (a *cli) printPeers(peers []control.PeerInfo) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSTATE\tFOUND\tTRANSPORT\tADDR\tRTT\tIN\tOUT\tDROPPED\tNOTE")
	for _, p := range peers {
		id := p.ID
		if len(id) > peerIDWidth {
			id = id[:peerIDWidth]
		}
		row := []string{orDash(p.Name), orDash(id), orDash(string(p.State)), orDash(p.Found), orDash(p.Transport), orDash(p.Addr),
			formatRTT(p.RTT), fmt.Sprint(p.MsgsIn), fmt.Sprint(p.MsgsOut), fmt.Sprint(p.Dropped), peerNote(p)}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// peerNote is the NOTE column of a peer: "via NODE" for a relayed host, the
// configured peer URL, the last error and a name clash, joined with "; "
// (one line).
func peerNote(p control.PeerInfo) string {
	var parts []string
	if p.Via != "" {
		parts = append(parts, "via "+p.Via)
	}
	switch p.State {
	case control.PeerMember:
		parts = append(parts, fmt.Sprintf("%d links away", p.Hops))
	case control.PeerLost, control.PeerLeft:
		if !p.Since.IsZero() {
			parts = append(parts, fmt.Sprintf("%s %s ago", p.State, time.Since(p.Since).Round(time.Second)))
		}
	}
	if p.Config != "" {
		parts = append(parts, p.Config)
	}
	if p.Error != "" {
		parts = append(parts, strings.Join(strings.Fields(p.Error), " "))
	}
	// Pings keep a live link talking every fifth of the dead time; a
	// second of silence on an up link is worth showing.
	if p.State == control.PeerUp && p.Silent >= time.Second {
		parts = append(parts, "silent "+p.Silent.Round(100*time.Millisecond).String())
	}
	if len(p.Clash) > 0 {
		parts = append(parts, "name also used by "+strings.Join(p.Clash, ", "))
	}
	return orDash(strings.Join(parts, "; "))
}

// formatRTT rounds a round-trip time for the table: 0.4ms, 12ms, 2.5s;
// "-" when none was measured.
func formatRTT(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < 100*time.Microsecond:
		return "<0.1ms"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Round(time.Millisecond)/time.Millisecond)
	}
	return d.Round(100 * time.Millisecond).String()
}

func (a *cli) newHealthCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Show the node's health",
		Long: `Health prints the node's status, name, uptime, number of plugins and version,
whether it is ready and if not why (a plugin failed to load, the node is
draining, a configured peer has not been dialled once yet), the applied
config's generation (it moves when a reload is applied) and digest, and for
a node in a mesh its id and the number of peers that are up. It exits 0
when the node is ready, 10 when it answers but is not ready (after
printing the reasons) and 7 when the node cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := a.client().Health(cmd.Context())
			if err != nil {
				return err
			}
			notReady := func() error {
				if h.Ready {
					return nil
				}
				return exitError{code: exitNotReady, err: fmt.Errorf("node %s is not ready: %s", h.Node, h.NotReady)}
			}
			if asJSON {
				if err := writeJSON(a.stdout, h, true); err != nil {
					return err
				}
				return notReady()
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 1, ' ', 0)
			fmt.Fprintf(tw, "status:\t%s\n", h.Status)
			fmt.Fprintf(tw, "node:\t%s\n", h.Node)
			if h.ID != "" {
				fmt.Fprintf(tw, "id:\t%s\n", h.ID)
			}
			fmt.Fprintf(tw, "uptime:\t%s\n", h.Uptime.Round(time.Second))
			fmt.Fprintf(tw, "plugins:\t%d\n", h.Plugins)
			if h.NotReady != "" {
				fmt.Fprintf(tw, "ready:\tno, %s\n", h.NotReady)
			}
			if h.ConfigGeneration > 0 {
				fmt.Fprintf(tw, "config:\tgeneration %d, digest %s\n", h.ConfigGeneration, h.ConfigDigest)
			}
			if h.ID != "" {
				fmt.Fprintf(tw, "peers:\t%d up\n", h.Peers)
				fmt.Fprintf(tw, "mesh:\t%d other hosts alive\n", h.Members)
			}
			fmt.Fprintf(tw, "version:\t%s\n", h.Version)
			if err := tw.Flush(); err != nil {
				return fmt.Errorf("write health: %w", err)
			}
			return notReady()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// versionReport is the output of `version --json`.
type versionReport struct {
	CLI       control.VersionInfo  `json:"cli"`
	Control   string               `json:"control"`
	Node      *control.VersionInfo `json:"node,omitempty"`
	NodeError string               `json:"node_error,omitempty"`
}

func (a *cli) newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the build, ABI, protocol and node versions",
		Long: `Version prints this binary's build version, the plugin ABI version it was
built against and the range it accepts, the range of mesh protocol versions
it speaks, and the same for the node at --control when one answers. A node that does not answer is reported, not an
error: version exits 0 either way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := versionReport{CLI: buildVersion()}
			c := a.client()
			rep.Control = c.Addr()
			ctx, cancel := context.WithTimeout(cmd.Context(), nodeVersionTimeout)
			defer cancel()
			nv, nodeErr := c.Version(ctx)
			if nodeErr != nil {
				rep.NodeError = nodeErr.Error()
			} else {
				rep.Node = &nv
			}
			if asJSON {
				return writeJSON(a.stdout, rep, true)
			}
			fmt.Fprintf(a.stdout, "pycomms-host %s\n%s\n%s\n", rep.CLI.BuildString(), rep.CLI.ABIString(), rep.CLI.ProtocolString())
			switch {
			case rep.Node != nil:
				fmt.Fprintf(a.stdout, "node at %s: %s\n", rep.Control, rep.Node)
			case message.StatusOf(nodeErr) == abi.StatusUnreachable:
				fmt.Fprintf(a.stdout, "node at %s: not running (or not reachable)\n", rep.Control)
			default:
				fmt.Fprintf(a.stdout, "node at %s: %s\n", rep.Control, rep.NodeError)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
