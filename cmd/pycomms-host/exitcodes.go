package main

import (
	"fmt"
	"strings"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Exit codes of the pycomms-host CLI, one per failure class. exitCodes
// describes each one; the root command's help and the test of EXITCODES.md
// both read that table, so the three cannot drift apart.
const (
	exitOK          = 0 // success
	exitUsage       = 1 // bad command line, invalid config, invalid or too large request
	exitNoHandler   = 2 // nobody serves the subject, or not that method
	exitTimeout     = 3 // the deadline passed
	exitPluginError = 4 // the handler returned an application error
	exitPluginTrap  = 5 // the plugin trapped, was killed or broke the ABI
	exitBusy        = 6 // a bounded queue on the node is full
	exitUnreachable = 7 // the node (or the node serving the subject) cannot be reached
	exitOther       = 8 // anything else: denied, internal errors, local I/O failures
	// exitListen is `run` failing to listen on one of its addresses
	// (control, listen.tcp, listen.quic): in use, or not this host's.
	// Not a config error: the same config may work once the address is
	// free, so a supervisor may retry it.
	exitListen = 9
	// exitUnsupportedType: the payload's content type (or encoding) is
	// not one the handler accepts and no codec converts it.
	exitUnsupportedType = 10
	// exitInterrupted follows the shell convention 128+SIGINT for a command
	// cut short by SIGINT or SIGTERM; `sub` exits exitOK on interrupt
	// instead, because interrupting is how it is meant to end.
	exitInterrupted = 130
)

// exitClass describes one exit code: its class as EXITCODES.md names it,
// the line the root command's help shows, and the ABI statuses that map to
// it (none for a code that no node status produces).
type exitClass struct {
	code     int
	class    string
	help     string
	statuses []abi.Status
}

// exitCodes lists every exit code in ascending order. Statuses that no
// entry names map to exitOther.
var exitCodes = []exitClass{
	{exitOK, "ok", "ok", []abi.Status{abi.StatusOK}},
	// invalid and too_large: the request as given can never succeed; the
	// user has to change the command line, the payload or the config, as
	// for a usage error.
	{exitUsage, "usage or config error", "usage or config error; invalid or too large request",
		[]abi.Status{abi.StatusInvalid, abi.StatusTooLarge}},
	{exitNoHandler, "no handler", "no handler for the subject (or the method); not a mesh node (peers, --node)",
		[]abi.Status{abi.StatusNoHandler, abi.StatusNoMethod}},
	{exitTimeout, "timeout", "timeout", []abi.Status{abi.StatusTimeout}},
	{exitPluginError, "plugin error", "plugin error (the handler returned an error)", []abi.Status{abi.StatusHandlerError}},
	{exitPluginTrap, "plugin trap", "plugin trap", []abi.Status{abi.StatusTrap}},
	{exitBusy, "busy", "busy", []abi.Status{abi.StatusBusy}},
	{exitUnreachable, "node unreachable", "node unreachable (also: --node names no known node)", []abi.Status{abi.StatusUnreachable}},
	{exitOther, "other", "other error (denied, internal, local I/O)",
		[]abi.Status{abi.StatusDenied, abi.StatusNotFound, abi.StatusInternal}},
	{exitListen, "cannot listen", "run cannot listen on an address (control, listen.tcp, listen.quic)", nil},
	{exitUnsupportedType, "unsupported type", "unsupported type (no codec converts the payload to a type the handler accepts)",
		[]abi.Status{abi.StatusUnsupportedType}},
	{exitInterrupted, "interrupted", "interrupted (sub exits 0 instead)", nil},
}

// exitCodeFor returns the CLI exit code for a failure of the given status.
func exitCodeFor(s abi.Status) int {
	for _, c := range exitCodes {
		for _, st := range c.statuses {
			if st == s {
				return c.code
			}
		}
	}
	return exitOther
}

// exitCodeOf returns the CLI exit code for err: exitOK for nil, the code of
// its status for a *message.Error (see exitCodeFor), exitOther otherwise.
func exitCodeOf(err error) int {
	if err == nil {
		return exitOK
	}
	return exitCodeFor(message.StatusOf(err))
}

// exitCodesHelp is the exit-code table of the root command's help.
func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:")
	for _, c := range exitCodes {
		fmt.Fprintf(&b, "\n  %-4d %s", c.code, c.help)
	}
	return b.String()
}
