// Command pycomms-host runs a pycomms node (run, validate, id) and is the
// command-line client of a running node's control API (call, send, pub, sub,
// plugins, peers, health, reload, version).
//
// The CLI is deliberately thin: every client command is one method of
// host/control's Client, and the exit code comes from the status that method
// reports (exitCodeOf in exitcodes.go; the table is in EXITCODES.md). This
// file and its siblings only parse arguments and format output.
//
// Argument parsing uses github.com/spf13/cobra (with spf13/pflag) rather
// than the standard flag package because the conventions every pycomms
// command follows need what flag lacks: flags interspersed with positional
// arguments (`pycomms-host call svc.m data --timeout 2s`), GNU-style short and
// long flags, repeatable flags (-H), global flags shared by every
// subcommand, generated help for nested commands, and shell completion.
//
// Release builds stamp their version with
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=0123abcd" ./cmd/pycomms-host
//
// and otherwise report what the Go toolchain embeds (module version, VCS
// revision).
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
)

// version and commit are set at link time by release builds (see the
// package doc); empty means "ask the build info".
var (
	version string
	commit  string
)

// buildVersion describes this binary, including the mesh protocol range it
// speaks; the node reports the same on GET /v1/version.
func buildVersion() control.VersionInfo {
	v := control.BuildVersion(version, commit)
	v.ProtocolMin, v.ProtocolMax = abi.ProtocolMinVersion, abi.ProtocolMaxVersion
	return v
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args with the given standard streams and
// returns the exit code. SIGINT and SIGTERM cancel the command's context:
// `sub` then exits 0, other commands report an interruption, and `run`
// shuts the node down gracefully.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, restore default handling so that a
		// second Ctrl-C kills a command that is slow to wind down.
		<-ctx.Done()
		stop()
	}()
	return execute(ctx, args, stdin, stdout, stderr)
}
