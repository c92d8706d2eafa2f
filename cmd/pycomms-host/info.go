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
column when some plugin's last load or reload failed. --json prints every
field.`,
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
			fmt.Sprint(p.Calls), fmt.Sprint(p.Errors), orDash(p.State)}
		if withErr {
			// One line per plugin: a multi-line error would break the table.
			row = append(row, orDash(strings.Join(strings.Fields(p.Error), " ")))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func (a *cli) newHealthCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Show the node's health",
		Long: `Health prints the node's status, name, uptime, number of plugins and version.
It exits 0 whenever the node answers (check the status field for its
verdict) and 7 when the node cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := a.client().Health(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, h, true)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 1, ' ', 0)
			fmt.Fprintf(tw, "status:\t%s\n", h.Status)
			fmt.Fprintf(tw, "node:\t%s\n", h.Node)
			fmt.Fprintf(tw, "uptime:\t%s\n", h.Uptime.Round(time.Second))
			fmt.Fprintf(tw, "plugins:\t%d\n", h.Plugins)
			fmt.Fprintf(tw, "version:\t%s\n", h.Version)
			if err := tw.Flush(); err != nil {
				return fmt.Errorf("write health: %w", err)
			}
			return nil
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
		Short: "Print the build, ABI and node versions",
		Long: `Version prints this binary's build version, the plugin ABI version it was
built against and the range it accepts, and the same for the node at
--control when one answers. A node that does not answer is reported, not an
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
			fmt.Fprintf(a.stdout, "pycomms-host %s\n%s\n", rep.CLI.BuildString(), rep.CLI.ABIString())
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
