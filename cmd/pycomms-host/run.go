package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pycomms/pycomms-host/host/config"
	hostnode "github.com/pycomms/pycomms-host/host/node"
)

// configPath resolves -c: an explicit path is used as given (and must
// exist); without -c, ./pycomms.yaml is used when present and the built-in
// defaults (the bundled echo plugin) otherwise.
func configPath(cmd *cobra.Command) string {
	f := cmd.Flag("config")
	if f.Changed {
		return f.Value.String()
	}
	if _, err := os.Stat(f.Value.String()); err == nil {
		return f.Value.String()
	}
	return ""
}

// configError makes a config problem exit with the usage/config code.
func configError(err error) error {
	var ce *config.Errors
	if errors.As(err, &ce) {
		return usageError{err}
	}
	return err
}

func newRunCmd() *cobra.Command {
	var strict bool
	cmd := &cobra.Command{
		Use:   "run [-c FILE] [--strict]",
		Short: "Run a node (built-in defaults and the bundled echo plugin when there is no config)",
		Long: `Run a node until SIGTERM or SIGINT, then drain it and stop.

Without -c, ./pycomms.yaml is used when it exists, and built-in defaults
otherwise: the control API on 127.0.0.1:7480 and the bundled echo plugin.
SIGHUP (or 'pycomms-host reload') re-reads the config file; a changed plugin
.wasm file is reloaded by itself. An invalid config exits 1; an address the
node cannot listen on (in use by another process, or not this host's)
exits 9, naming its key (control, listen.tcp, listen.quic). SIGINT or
SIGTERM while the config loads stops at once with exit code 130.

The first SIGTERM or SIGINT after the start drains the node: new calls,
sends, events and subscriptions are refused with busy ("draining"),
/readyz answers 503, the mesh peers are told that the node leaves, and
the work in flight gets up to drain_timeout (default 10s) to finish. The
exit code is 0 when it did and 11 when the timeout cut work off; a second
signal during the drain stops at once, with 11.

Under systemd (Type=notify) the node reports READY=1 once it serves,
RELOADING=1 and READY=1 around a reload, STOPPING=1 when it drains, and
pings the watchdog when the unit sets WatchdogSec=.

A plugin that cannot be loaded does not stop the node: it is listed in state
"failed" with its error, loaded again when its file changes, and health says
the node is not ready. With --strict the node refuses to start instead
(exit 1), as validate would.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			// Before anything listens: Start tells systemd READY=1 and a
			// reload may follow at once, and SIGHUP's default action would
			// end the process. One that comes during Start is taken after.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			n, err := hostnode.New(ctx, hostnode.Options{
				ConfigPath: configPath(cmd),
				Env:        os.Environ(),
				LogOutput:  cmd.ErrOrStderr(),
				Version:    buildVersion(),
				Strict:     strict,
				Systemd:    true,
			})
			if err != nil {
				return configError(err)
			}
			if err := n.Start(); err != nil {
				n.Close()
				var le *hostnode.ListenError
				if errors.As(err, &le) {
					return exitError{code: exitListen, err: err}
				}
				return err
			}
			for {
				select {
				case <-ctx.Done():
					// The first SIGTERM or SIGINT (main cancels ctx) or
					// an embedder's cancel. The next signal is this
					// command's own from here on: main restores the
					// default action after the first, and the drain
					// must see a second one to stop at once.
					stop := make(chan os.Signal, 1)
					signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
					defer signal.Stop(stop)
					return drainAndStop(n, context.Cause(ctx), stop)
				case <-hup:
					// Reload logs its own outcome; a refused config keeps
					// the running one, so the node goes on either way.
					_ = n.Reload(ctx) // a stop signal ends a reload stuck reading its file
				}
			}
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "refuse to start (exit 1) when a plugin cannot be loaded, instead of starting without it")
	return cmd
}

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [-c FILE]",
		Short: "Check a config and its plugins without starting a node",
		Long: `Check everything short of listening: the config (keys, types, sizes,
durations, grants, subjects), and that every plugin file exists, compiles and
speaks a supported ABI version. Every problem is reported, each with its file,
line and key; the exit status is 1 when there is any. Warnings (such as a
mesh with no trust rule, which any host may join) go to stderr and do not
change the exit status.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := configPath(cmd)
			if err := hostnode.Validate(cmd.Context(), hostnode.Options{ConfigPath: path, Env: os.Environ()}); err != nil {
				return configError(err)
			}
			// Warnings do not fail validation: an open mesh is a choice,
			// but one the operator must see.
			if cfg, err := config.LoadContext(cmd.Context(), path, os.Environ()); err == nil {
				for _, w := range cfg.Warnings() {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
				}
			}
			if path == "" {
				path = "built-in defaults"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			return nil
		},
	}
}

// idReport is the output of `id --json`.
type idReport struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Key  string `json:"key"`
}

func newIDCmd() *cobra.Command {
	var asJSON, create bool
	cmd := &cobra.Command{
		Use:   "id [-c FILE] [--create]",
		Short: "Print this node's id (from its key; no running node needed)",
		Long: `Id prints the node id that the config's identity key gives, the id other hosts
pin in trust.nodes and name with --node. It reads the config (-c, as run
does) and the key file; it does not talk to a running node. --json prints
{"id", "name", "key"}, the node name and the key file's path too.

Id never creates the key unless asked: without one it exits 1 and names the
path where the node creates it at its first start. --create creates it
there (as run would; stderr says so) and prints the id. A key file that
cannot be read or used is a config error, exit 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadContext(cmd.Context(), configPath(cmd), os.Environ())
			if err != nil {
				return configError(err)
			}
			keyPath := cfg.Identity.Key
			_, statErr := os.Stat(keyPath)
			creating := create && errors.Is(statErr, fs.ErrNotExist)
			id, err := hostnode.LoadID(keyPath, cfg.Identity.Cert, create)
			var missing *hostnode.MissingKeyError
			if errors.As(err, &missing) {
				again := "pycomms-host id --create"
				if f := cmd.Flag("config"); f.Changed {
					again += " -c " + f.Value.String()
				}
				return usageErrorf("no node key at %s yet (identity.key): the node creates it there when it first starts (pycomms-host run); to create it now, run %s", keyPath, again)
			}
			if err != nil {
				// A config problem, reported as run reports it: exit 1,
				// with the key that names the file.
				key := "identity.key"
				if cfg.Identity.Cert != "" {
					key = "identity.cert"
				}
				return configError(&config.Errors{List: []*config.Error{cfg.At(key, "%v", err)}})
			}
			if creating {
				fmt.Fprintf(cmd.ErrOrStderr(), "created node key %s\n", keyPath)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, idReport{ID: id, Name: cfg.Node.Name, Key: keyPath}, true)
			}
			fmt.Fprintln(out, id)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"id","name","key"}`)
	cmd.Flags().BoolVar(&create, "create", false, "create the key when it does not exist yet, as run would")
	return cmd
}

// drainAndStop drains n, stopped because of why, and closes it: nil
// (exit 0) when the work in flight finished within drain_timeout, an
// exitDrainIncomplete error when it did not or when a second signal came
// on stop first; then the process ends at once, without waiting for the
// node to close.
func drainAndStop(n *hostnode.Node, why error, stop <-chan os.Signal) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.DrainTimeout())
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- n.Drain(ctx) }()
	var drainErr error
	select {
	case drainErr = <-drained:
	case sig := <-stop:
		return exitError{code: exitDrainIncomplete, err: fmt.Errorf("stopped at once by a second signal (%v) during the drain", sig)}
	}
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	if drainErr == nil {
		// Nothing is in flight: closing is quick, but a second signal
		// still ends it.
		select {
		case err := <-closed:
			return err
		case sig := <-stop:
			return exitError{code: exitDrainIncomplete, err: fmt.Errorf("stopped at once by a second signal (%v) while closing", sig)}
		}
	}
	// The work still in flight is cut off: a plugin call that cannot be
	// interrupted (a guest blocked in a host call such as a sleep) must
	// not hold the process past its drain_timeout. Closing gets a short
	// grace to flush logs and say goodbye, then the process ends.
	select {
	case <-closed:
	case <-stop:
	case <-time.After(closeGrace):
	}
	return exitError{code: exitDrainIncomplete, err: fmt.Errorf("stopping (%v): %w", why, drainErr)}
}

// closeGrace bounds closing a node whose drain did not finish.
const closeGrace = 2 * time.Second
