package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
)

const dataHelp = `DATA is the payload, byte for byte. With DATA "-", or without DATA when stdin
is not a terminal, the payload is read from stdin. A DATA that starts with
"-" must follow "--" so that it is not taken for a flag.`

// nodeFlagHelp documents --node of call and send.
const nodeFlagHelp = "deliver only to this node (name, id or id prefix)"

func (a *cli) newCallCmd() *cobra.Command {
	var (
		timeout     time.Duration
		headers     []string
		raw         bool
		node        string
		contentType string
		accept      string
	)
	cmd := &cobra.Command{
		Use:   "call SUBJECT [DATA|-]",
		Short: "Call a service and print its reply",
		Long: `Call sends a request to SUBJECT (service.method) through the node and prints
the reply payload to stdout, followed by a newline unless --raw is given.
With --node the request goes to that node of the mesh only (a node name, a
node id or an id prefix of at least 6 characters; see 'pycomms-host peers'):
exit 7 when the mesh knows no such node, 2 when the node is not part of a
mesh.

` + dataHelp,
		Example: `  pycomms-host call inventory.reserve '{"sku":"a1","qty":2}'
  pycomms-host call inventory.reserve - --timeout 2s < request.json
  pycomms-host call echo.say hi -H trace-id=7 --raw > reply.bin
  pycomms-host call inventory.count --node node-b
  pycomms-host call orders.add '{"id":1}' --content-type application/json --accept application/json`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: a.completeSubjects(servicesOf),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return usageErrorf("--timeout %v: must be more than 0", timeout)
			}
			h, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			if h, err = typeHeaders(h, contentType, accept); err != nil {
				return err
			}
			payload, err := a.payload(args[1:])
			if err != nil {
				return err
			}
			reply, err := a.client().CallNode(cmd.Context(), node, args[0], payload, h, timeout)
			if err != nil {
				return err
			}
			if !raw {
				reply = append(reply, '\n')
			}
			if _, err := a.stdout.Write(reply); err != nil {
				return fmt.Errorf("write reply: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVarP(&timeout, "timeout", "t", control.DefaultCallTimeout, "how long to wait for the reply (at most 1h)")
	f.StringArrayVarP(&headers, "header", "H", nil, "message header key=value (repeatable)")
	f.BoolVar(&raw, "raw", false, "print the reply exactly, without a trailing newline")
	f.StringVar(&node, "node", "", nodeFlagHelp)
	f.StringVar(&contentType, "content-type", "", contentTypeHelp)
	f.StringVar(&accept, "accept", "", "media types the reply should have, in order of preference (header accept, e.g. application/json); exit 10 when none can be had")
	_ = cmd.RegisterFlagCompletionFunc("node", a.completeNodes)
	return cmd
}

func (a *cli) newSendCmd() *cobra.Command {
	var (
		headers     []string
		node        string
		contentType string
	)
	cmd := &cobra.Command{
		Use:   "send SUBJECT [DATA|-]",
		Short: "Send a one-way message to a service",
		Long: `Send delivers a one-way message to SUBJECT (service.method); no reply is
expected. It prints nothing on success. With --node the message goes to that
node of the mesh only, as with call.

` + dataHelp,
		Example: `  pycomms-host send mail.queue '{"to":"ops"}' -H prio=high
  pycomms-host send cache.flush --node 5kq3x7`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: a.completeSubjects(servicesOf),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			if h, err = typeHeaders(h, contentType, ""); err != nil {
				return err
			}
			payload, err := a.payload(args[1:])
			if err != nil {
				return err
			}
			return a.client().SendNode(cmd.Context(), node, args[0], payload, h)
		},
	}
	cmd.Flags().StringArrayVarP(&headers, "header", "H", nil, "message header key=value (repeatable)")
	cmd.Flags().StringVar(&node, "node", "", nodeFlagHelp)
	cmd.Flags().StringVar(&contentType, "content-type", "", contentTypeHelp)
	_ = cmd.RegisterFlagCompletionFunc("node", a.completeNodes)
	return cmd
}

func (a *cli) newPubCmd() *cobra.Command {
	var (
		headers     []string
		asJSON      bool
		contentType string
	)
	cmd := &cobra.Command{
		Use:   "pub TOPIC [DATA|-]",
		Short: "Publish an event on a topic",
		Long: `Pub publishes an event on TOPIC. It prints nothing on success; with --json it
prints {"receivers":N}: how many local subscribers took the event, plus how many
other hosts it was handed to (at-most-once: a host counts once, when the event
is queued on its link, whatever its own subscribers then do).

` + dataHelp,
		Example:           `  pycomms-host pub orders.eu.new '{"id":1}' --json`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: a.completeSubjects(topicsOf),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			if h, err = typeHeaders(h, contentType, ""); err != nil {
				return err
			}
			payload, err := a.payload(args[1:])
			if err != nil {
				return err
			}
			n, err := a.client().Publish(cmd.Context(), args[0], payload, h)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, map[string]int{"receivers": n}, false)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&headers, "header", "H", nil, "message header key=value (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"receivers":N}`)
	cmd.Flags().StringVar(&contentType, "content-type", "", contentTypeHelp)
	return cmd
}

// subLine is one line of `sub --json`. Exactly one of Payload and
// PayloadB64 is set: text stays readable, binary stays intact.
type subLine struct {
	Subject    string            `json:"subject"`
	Headers    map[string]string `json:"headers"`
	Payload    *string           `json:"payload,omitempty"`
	PayloadB64 *string           `json:"payload_b64,omitempty"`
}

func (a *cli) newSubCmd() *cobra.Command {
	var (
		asJSON bool
		buffer int
		accept string
	)
	cmd := &cobra.Command{
		Use:   "sub PATTERN",
		Short: "Print the events published on matching topics",
		Long: `Sub subscribes to PATTERN ('*' matches one token, '>' as the last token one or
more) and prints each event's payload on its own line until interrupted
(Ctrl-C exits 0). With --json each line is an object with "subject",
"headers" and "payload" (the payload as text when it is valid UTF-8) or
"payload_b64" (base64, otherwise).

The node buffers up to --buffer events for a slow reader and drops newer ones
beyond that; sub warns on stderr when that happens. If the node ends the
subscription (it shut down), sub exits 7 (node unreachable).

With --accept the node converts each event that has a content-type to the
first of those media types a codec plugin reaches; an event it cannot
convert is skipped (sub warns on stderr with the running count) and the
stream goes on.`,
		Example: `  pycomms-host sub 'orders.>'
  pycomms-host sub 'sensors.*.temp' --json | jq .payload`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSubjects(topicsOf),
		RunE: func(cmd *cobra.Command, args []string) error {
			if buffer < 0 || buffer > control.MaxSubscribeBuffer {
				return usageErrorf("--buffer %d: must be from 1 to %d (0: the node's default)", buffer, control.MaxSubscribeBuffer)
			}
			ctx := cmd.Context()
			c := a.client()
			var warned, warnedSkip uint64
			err := c.SubscribeAccept(ctx, args[0], buffer, accept, func(m *message.Message, n control.StreamCounts) error {
				if n.Dropped > warned {
					fmt.Fprintf(a.stderr, "pycomms-host: warning: %d events dropped so far (reading too slowly; try a larger --buffer)\n", n.Dropped)
					warned = n.Dropped
				}
				if n.Skipped > warnedSkip {
					fmt.Fprintf(a.stderr, "pycomms-host: warning: %d events skipped so far: no codec converts them to --accept %s (the node logs why)\n", n.Skipped, accept)
					warnedSkip = n.Skipped
				}
				if asJSON {
					return writeJSON(a.stdout, newSubLine(m), false)
				}
				// A copy: the payload is shared and must not be appended to.
				line := append(append(make([]byte, 0, len(m.Payload)+1), m.Payload...), '\n')
				if _, err := a.stdout.Write(line); err != nil {
					return fmt.Errorf("write event: %w", err)
				}
				return nil
			})
			switch {
			case ctx.Err() != nil:
				return nil // interrupted: the normal way to stop
			case err == nil:
				return message.Errorf(abi.StatusUnreachable, "node at %s ended the subscription", c.Addr())
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per event")
	cmd.Flags().IntVar(&buffer, "buffer", 0, "events the node buffers for this subscriber (0: node default, 256)")
	cmd.Flags().StringVar(&accept, "accept", "", "convert events to these media types, in order of preference (e.g. application/json)")
	return cmd
}

// contentTypeHelp documents --content-type of call, send and pub.
const contentTypeHelp = "media type of DATA (header content-type, e.g. application/json): a plugin that accepts another type gets it converted by a codec; exit 10 when none can"

// typeHeaders adds --content-type and --accept to the headers of -H,
// refusing a media type that does not parse and a header given twice.
func typeHeaders(h map[string]string, contentType, accept string) (map[string]string, error) {
	add := func(flag, key, v string) error {
		if v == "" {
			return nil
		}
		if _, dup := h[key]; dup {
			return usageErrorf("--%s and -H %s=...: give the %s once", flag, key, key)
		}
		if h == nil {
			h = map[string]string{}
		}
		h[key] = v
		return nil
	}
	if contentType != "" {
		if _, _, err := mime.ParseMediaType(contentType); err != nil || !strings.Contains(contentType, "/") {
			return nil, usageErrorf("--content-type %q: not a media type (type/subtype, e.g. application/json)", contentType)
		}
	}
	if err := add("content-type", "content-type", contentType); err != nil {
		return nil, err
	}
	if err := add("accept", "accept", accept); err != nil {
		return nil, err
	}
	return h, nil
}

func newSubLine(m *message.Message) subLine {
	l := subLine{Subject: m.Subject, Headers: m.Headers}
	if l.Headers == nil {
		l.Headers = map[string]string{}
	}
	if utf8.Valid(m.Payload) {
		s := string(m.Payload)
		l.Payload = &s
	} else {
		s := base64.StdEncoding.EncodeToString(m.Payload)
		l.PayloadB64 = &s
	}
	return l
}

func (a *cli) newReloadCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Make the node re-read its config and reload its plugins",
		Long: `Reload asks the running node to re-read its config file and apply it, as
SIGHUP does. A config that is missing, does not parse or validate, or changes
a key only a restart applies is refused (exit 1, with every problem and its
file, line and key) and the running config keeps serving. It prints nothing
on success.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.client().Reload(cmd.Context())
		},
	}
}

// writeJSON prints v as JSON followed by a newline: on one line for
// streams and one-value answers, indented for documents people read.
func writeJSON(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // payloads and errors are not HTML
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// completeSubjects completes the first argument from what the node's
// plugins serve or subscribe to. Completion must never fail loudly, so any
// error just means no suggestions.
func (a *cli) completeSubjects(from func(control.PluginInfo) []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
		defer cancel()
		plugins, err := a.client().Plugins(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, p := range plugins {
			for _, s := range from(p) {
				if strings.HasPrefix(s, toComplete) {
					out = append(out, s)
				}
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// completeNodes completes --node with the names of the peers that are up or
// relayed, the nodes a message can reach. Like completeSubjects, it never
// fails loudly.
func (a *cli) completeNodes(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
	defer cancel()
	peers, err := a.client().Peers(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, p := range peers {
		if (p.State == control.PeerUp || p.State == control.PeerRelayed) && p.Name != "" && strings.HasPrefix(p.Name, toComplete) {
			out = append(out, p.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// servicesOf suggests "service." so that the user types the method next.
func servicesOf(p control.PluginInfo) []string {
	out := make([]string, len(p.Services))
	for i, s := range p.Services {
		out[i] = s + "."
	}
	return out
}

func topicsOf(p control.PluginInfo) []string { return p.Topics }
