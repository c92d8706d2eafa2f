package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

func TestExitCodeFor(t *testing.T) {
	want := map[abi.Status]int{
		abi.StatusOK: 0, abi.StatusInvalid: 1, abi.StatusTooLarge: 1,
		abi.StatusNoHandler: 2, abi.StatusNoMethod: 2, abi.StatusTimeout: 3,
		abi.StatusHandlerError: 4, abi.StatusTrap: 5, abi.StatusBusy: 6,
		abi.StatusUnreachable: 7, abi.StatusDenied: 8, abi.StatusNotFound: 8,
		abi.StatusInternal: 8, abi.Status(42): 8,
	}
	for st, code := range want {
		if got := exitCodeFor(st); got != code {
			t.Errorf("exitCodeFor(%v) = %d, want %d", st, got, code)
		}
	}
	if exitCodeOf(nil) != 0 || exitCodeOf(errors.New("x")) != 8 ||
		exitCodeOf(fmt.Errorf("wrapped: %w", message.Errorf(abi.StatusTrap, "t"))) != 5 {
		t.Error("exitCodeOf does not classify by status")
	}
}

// TestExitCodesDoc checks EXITCODES.md's table against exitCodes, the
// table the CLI maps statuses with and prints in its help: the same codes
// in the same order, each with the same class and the same statuses, and
// every ABI status listed.
func TestExitCodesDoc(t *testing.T) {
	doc, err := os.ReadFile("EXITCODES.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| (\d+) \| ([^|]+) \| ([^|]*) \|`)
	name := regexp.MustCompile("`([a-z_]+)`")
	rows := row.FindAllStringSubmatch(string(doc), -1)
	if len(rows) != len(exitCodes) {
		t.Errorf("EXITCODES.md lists %d exit codes, exitCodes %d", len(rows), len(exitCodes))
	}
	seen := map[abi.Status]bool{}
	for i, m := range rows {
		code, _ := strconv.Atoi(m[1])
		var statuses []abi.Status
		for _, n := range name.FindAllStringSubmatch(m[3], -1) {
			st, ok := abi.ParseStatus(n[1])
			if !ok {
				t.Errorf("EXITCODES.md: unknown status %q", n[1])
				continue
			}
			if got := exitCodeFor(st); got != code {
				t.Errorf("EXITCODES.md: %s → %d, exitCodeFor says %d", st, code, got)
			}
			statuses = append(statuses, st)
			seen[st] = true
		}
		if i >= len(exitCodes) {
			t.Errorf("EXITCODES.md: code %d is not in exitCodes", code)
			continue
		}
		c := exitCodes[i]
		if c.code != code || c.class != strings.TrimSpace(m[2]) || !slices.Equal(c.statuses, statuses) {
			t.Errorf("EXITCODES.md row %d: code %d %q statuses %v; exitCodes has %d %q %v",
				i+1, code, strings.TrimSpace(m[2]), statuses, c.code, c.class, c.statuses)
		}
	}
	for _, st := range abi.Statuses() {
		if !seen[st] {
			t.Errorf("EXITCODES.md does not list status %s", st)
		}
	}
}

// TestExitCodesHelp checks that the root command's help lists every exit
// code of exitCodes with its line.
func TestExitCodesHelp(t *testing.T) {
	r := runCLI(t, "", "--help")
	for _, c := range exitCodes {
		if line := fmt.Sprintf("\n  %-4d %s\n", c.code, c.help); !strings.Contains(r.stdout+"\n", line) {
			t.Errorf("root help lacks %q:\n%s", line, r.stdout)
		}
	}
}
