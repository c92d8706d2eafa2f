package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

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
	return &cobra.Command{
		Use:   "run [-c FILE]",
		Short: "Run a node (built-in defaults and the bundled echo plugin when there is no config)",
		Long: `Run a node until SIGINT or SIGTERM, then shut down gracefully.

Without -c, ./pycomms.yaml is used when it exists, and built-in defaults
otherwise: the control API on 127.0.0.1:7480 and the bundled echo plugin.
SIGHUP (or 'pycomms-host reload') re-reads the config file; a changed plugin
.wasm file is reloaded by itself.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			n, err := hostnode.New(ctx, hostnode.Options{
				ConfigPath: configPath(cmd),
				Env:        os.Environ(),
				LogOutput:  cmd.ErrOrStderr(),
				Version:    buildVersion(),
			})
			if err != nil {
				return configError(err)
			}
			if err := n.Start(); err != nil {
				n.Close()
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-ctx.Done():
					return n.Close()
				case <-hup:
					// Reload logs its own outcome; a refused config keeps
					// the running one, so the node goes on either way.
					_ = n.Reload(context.Background())
				}
			}
		},
	}
}

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [-c FILE]",
		Short: "Check a config and its plugins without starting a node",
		Long: `Check everything short of listening: the config (keys, types, sizes,
durations, grants, subjects), and that every plugin file exists, compiles and
speaks a supported ABI version. Every problem is reported, each with its file,
line and key; the exit status is 1 when there is any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := configPath(cmd)
			if err := hostnode.Validate(cmd.Context(), hostnode.Options{ConfigPath: path, Env: os.Environ()}); err != nil {
				return configError(err)
			}
			if path == "" {
				path = "built-in defaults"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			return nil
		},
	}
}
