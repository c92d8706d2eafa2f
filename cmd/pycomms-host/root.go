package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/control"
)

// envControl names the environment variable that sets the default of
// --control.
const envControl = "PYCOMMS_CONTROL"

// cli is the state shared by the commands of one execution: the standard
// streams and the global flags.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	control        string // --control
	tokenFile      string // --token-file
	token          string // from --token-file or PYCOMMS_CONTROL_TOKEN, read by loadToken
	// ran is set when a command's own code starts; an error before that
	// came from parsing the command line and is a usage error.
	ran bool
}

// client returns a control API client for --control, sending the token
// when one was given.
func (a *cli) client() *control.Client {
	return control.NewClient(a.control, control.WithBearerToken(a.token))
}

// loadToken reads the control API token from --token-file, else from
// PYCOMMS_CONTROL_TOKEN. A file is held to the node's rules (owner-only
// mode, 16 bytes at least), so a token is never read from a file others
// can read. Errors never show the token.
func (a *cli) loadToken(getenv func(string) string) error {
	if a.tokenFile != "" {
		tok, err := control.ReadTokenFile("--token-file", a.tokenFile)
		if err != nil {
			return usageError{err}
		}
		a.token = tok
		return nil
	}
	if v := getenv(control.EnvToken); v != "" {
		tok, err := control.CheckToken("env "+control.EnvToken, v)
		if err != nil {
			return usageError{err}
		}
		a.token = tok
	}
	return nil
}

// usageError is a command-line mistake found by a command itself (after
// cobra's parsing), such as a malformed -H value. It exits exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitError is a command's error that exits with a code of its own class
// rather than the one of its status (such as exitListen).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// execute runs one command line and returns its exit code. Errors go to
// stderr as "pycomms-host: <text>".
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := a.exitCode(ctx, err)
	if code == exitInterrupted {
		// "context canceled" would be the library's view of a Ctrl-C.
		err = errors.New("interrupted")
	}
	fmt.Fprintf(stderr, "pycomms-host: %v\n", err)
	if code == exitUsage && !a.ran {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// exitCode classifies err, the error of a command run under ctx.
func (a *cli) exitCode(ctx context.Context, err error) int {
	var ue usageError
	var ee exitError
	switch {
	case !a.ran, errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ee):
		return ee.code
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitCodeOf(err)
}

// newRootCmd builds the command tree. Commands write to cmd.OutOrStdout()
// and cmd.ErrOrStderr(), which are a's streams.
func newRootCmd(a *cli) *cobra.Command {
	root := &cobra.Command{
		Use:   "pycomms-host",
		Short: "Run a pycomms node, and talk to a running one",
		Long: `pycomms-host runs a pycomms node: a host for sandboxed WebAssembly plugins
that exchange messages (request/reply, one-way sends, publish/subscribe,
durable queues) locally and with other nodes. The other commands are clients of a running
node's control API, selected with --control (env ` + envControl + `).

` + exitCodesHelp(),
		SilenceUsage:  true, // a usage error gets one hint line, not the whole help
		SilenceErrors: true, // execute prints errors in one consistent format
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	defControl := control.DefaultAddr
	if v := config.ControlFromEnv(os.Getenv); v != "" {
		defControl = v
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.control, "control", defControl, "control API address of the node, host:port, http://host:port or unix:///path (env "+envControl+" or "+envControl+"__LISTEN)")
	pf.StringP("config", "c", "pycomms.yaml", "config file (run, validate, id)")
	pf.StringVar(&a.tokenFile, "token-file", "", "file holding the control API token of a node with control.token_file, mode 0600 (env "+control.EnvToken+" holds the token itself)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch cmd.Name() {
		case "run", "validate", "id":
			return nil // not clients: a token in the environment is not theirs
		}
		return a.loadToken(os.Getenv)
	}

	root.AddCommand(
		newRunCmd(),
		newValidateCmd(),
		newIDCmd(),
		a.newCallCmd(),
		a.newSendCmd(),
		a.newPubCmd(),
		a.newSubCmd(),
		a.newEnqueueCmd(),
		a.newPluginsCmd(),
		a.newQueuesCmd(),
		a.newPeersCmd(),
		a.newHealthCmd(),
		a.newReloadCmd(),
		a.newVersionCmd(),
	)
	a.markRan(root)
	return root
}

// markRan wraps the Run/RunE of every command so that a.ran tells a
// command's own error from a command-line parsing error.
func (a *cli) markRan(c *cobra.Command) {
	if orig := c.RunE; orig != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			a.ran = true
			return orig(cmd, args)
		}
	}
	if orig := c.Run; orig != nil {
		c.Run = func(cmd *cobra.Command, args []string) {
			a.ran = true
			orig(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		a.markRan(sub)
	}
}

// parseHeaders turns -H key=value flags into message headers. Names are
// lower-cased, as the node does.
func parseHeaders(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	h := make(map[string]string, len(flags))
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usageErrorf("-H %q: want key=value", f)
		}
		h[strings.ToLower(strings.TrimSpace(k))] = v
	}
	return h, nil
}

// payload returns the message payload from the optional DATA argument:
// DATA itself, or stdin when DATA is "-" or absent. An absent DATA with
// stdin on a terminal means an empty payload rather than waiting for
// typing that the user did not mean to do.
func (a *cli) payload(args []string) ([]byte, error) {
	if len(args) > 0 && args[0] != "-" {
		return []byte(args[0]), nil
	}
	if len(args) == 0 && isTerminal(a.stdin) {
		return nil, nil
	}
	b, err := io.ReadAll(a.stdin)
	if err != nil {
		return nil, fmt.Errorf("read payload from stdin: %w", err)
	}
	return b, nil
}

// isTerminal reports whether r is a character device such as a terminal
// (or /dev/null, which reads as empty either way).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
