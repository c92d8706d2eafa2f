package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
)

func (a *cli) newEnqueueCmd() *cobra.Command {
	var (
		timeout     time.Duration
		headers     []string
		contentType string
	)
	cmd := &cobra.Command{
		Use:   "enqueue QUEUE.METHOD [DATA|-]",
		Short: "Put a message on a durable queue",
		Long: `Enqueue stores a message in the durable queue QUEUE, on the node (of the
mesh) whose plugin consumes it, and prints the message's id in that queue
once it is on disk there. The message is then delivered to the consuming
plugin, at least once, as a send on subject $queue.QUEUE.METHOD: METHOD
(one or more tokens) is yours to choose, as when calling a service. A
delivery that fails is retried with back-off and, after queues.max_attempts,
kept as a dead letter ('pycomms-host queues dead QUEUE').

Exit 2 when no node consumes QUEUE, 6 when the queue is full
(queues.max_depth). Without an id printed, the message may or may not have
been stored: enqueue again if it must not be lost (the consumer may then
get it twice, as with any at-least-once delivery).

` + dataHelp,
		Example: `  pycomms-host enqueue orders.created '{"id":42}'
  pycomms-host enqueue billing.v1.charge - < charge.json -H idempotency-key=42`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return usageErrorf("--timeout %v: must be more than 0", timeout)
			}
			if !strings.Contains(args[0], ".") || strings.HasPrefix(args[0], "$") {
				return usageErrorf("%q: write QUEUE.METHOD, such as orders.created (the queue, then a method of your choosing)", args[0])
			}
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
			id, err := a.client().Call(cmd.Context(), abi.QueueSubjectPrefix+args[0], payload, h, timeout)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%s\n", id)
			return err
		},
	}
	f := cmd.Flags()
	f.DurationVarP(&timeout, "timeout", "t", control.DefaultCallTimeout, "how long to wait for the message to be stored (at most 1h)")
	f.StringArrayVarP(&headers, "header", "H", nil, "message header key=value (repeatable)")
	f.StringVar(&contentType, "content-type", "", contentTypeHelp)
	return cmd
}

func (a *cli) newQueuesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "List the node's durable queues",
		Long: `Queues prints a table of the durable queues this node keeps: the plugin that
consumes each ("-" when none does now: its messages wait on disk), the
messages held (DEPTH: due now, waiting out a back-off, or being delivered),
dead letters, and counters since the node started. --json prints every
field.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := a.client().Queues(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []control.QueueInfo{}
				}
				return writeJSON(a.stdout, list, true)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "QUEUE\tCONSUMER\tDEPTH\tIN FLIGHT\tDELAYED\tDEAD\tENQUEUED\tACKED\tRETRIED")
			for _, q := range list {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", q.Name, orDash(q.Consumer), q.Depth, q.InFlight,
					q.Delayed, q.Dead, q.Enqueued, q.Acked, q.Retried)
			}
			if err := tw.Flush(); err != nil {
				return fmt.Errorf("write table: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(a.newQueuesDeadCmd(), a.newQueuesRedriveCmd(), a.newQueuesPurgeCmd())
	return cmd
}

func (a *cli) newQueuesRedriveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "redrive QUEUE",
		Short: "Put a queue's dead letters back in the queue",
		Long: `Redrive moves every dead letter of QUEUE back into the queue, behind the
messages waiting there, with its attempts counted from 0 again: for when
the consumer's fault is fixed. It prints how many it moved. Exit 2 when the
node keeps no such queue.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.client().Redrive(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%d dead letters of %s moved back into the queue\n", n, args[0])
			return err
		},
	}
}

func (a *cli) newQueuesPurgeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "purge QUEUE",
		Short: "Delete a queue's dead letters",
		Long: `Purge deletes every dead letter of QUEUE (messages still waiting for
delivery are kept) and prints how many it deleted. Exit 2 when the node
keeps no such queue.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.client().PurgeDead(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%d dead letters of %s deleted\n", n, args[0])
			return err
		},
	}
}

func (a *cli) newQueuesDeadCmd() *cobra.Command {
	var (
		asJSON bool
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "dead QUEUE",
		Short: "Show a queue's dead letters",
		Long: `Dead prints the dead letters of QUEUE, oldest first: messages that failed
queues.max_attempts deliveries, with their id, subject, attempts and last
error. --json prints every field, the payload in base64. Exit 2 when the
node keeps no such queue.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > control.MaxDeadLetters {
				return usageErrorf("--limit %d: must be from 1 to %d", limit, control.MaxDeadLetters)
			}
			list, err := a.client().DeadLetters(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []control.DeadLetter{}
				}
				return writeJSON(a.stdout, list, true)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSUBJECT\tATTEMPTS\tDIED\tLAST ERROR")
			for _, d := range list {
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\n", d.ID, d.Subject, d.Attempts, d.Died.UTC().Format(time.RFC3339),
					strings.Join(strings.Fields(d.LastError), " "))
			}
			if err := tw.Flush(); err != nil {
				return fmt.Errorf("write table: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&limit, "limit", control.DefaultDeadLetters, "show at most this many")
	return cmd
}
