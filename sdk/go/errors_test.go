package pycomms

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
)

func TestStatusOf(t *testing.T) {
	timeout := &Error{Status: abi.StatusTimeout, Msg: "call x.y: deadline passed"}
	for _, tc := range []struct {
		name string
		err  error
		want abi.Status
	}{
		{"nil", nil, abi.StatusOK},
		{"plain error", errors.New("boom"), abi.StatusHandlerError},
		{"host error", timeout, abi.StatusTimeout},
		{"wrapped host error", fmt.Errorf("inventory: %w", timeout), abi.StatusTimeout},
		{"Errorf", Errorf(abi.StatusBusy, "queue full"), abi.StatusBusy},
		{"Errorf wrapping", Errorf(abi.StatusNotFound, "no item: %w", timeout), abi.StatusNotFound},
		{"ok status is no failure", &Error{Status: abi.StatusOK, Msg: "?"}, abi.StatusHandlerError},
		{"unknown status", &Error{Status: 99}, abi.StatusHandlerError},
		{"newest status", Errorf(abi.StatusUnsupportedType, "no codec"), abi.StatusUnsupportedType},
		{"one past the newest status", &Error{Status: abi.MaxStatus + 1}, abi.StatusHandlerError},
		{"ok status wrapping a timeout", Errorf(abi.StatusOK, "x: %w", timeout), abi.StatusTimeout},
	} {
		if got := StatusOf(tc.err); got != tc.want {
			t.Errorf("%s: StatusOf = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestErrorf(t *testing.T) {
	err := Errorf(abi.StatusTimeout, "reserve %s: %w", "sku-1", io.ErrUnexpectedEOF)
	if got, want := err.Error(), "reserve sku-1: unexpected EOF"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("errors.Is does not see the %w operand")
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Status != abi.StatusTimeout {
		t.Errorf("errors.As gives %+v", pe)
	}
	if got := (&Error{Status: abi.StatusBusy}).Error(); got != "pycomms: busy" {
		t.Errorf("empty Msg: Error() = %q", got)
	}
}

func TestHostError(t *testing.T) {
	for _, tc := range []struct {
		op, target string
		st         abi.Status
		text, want string
	}{
		{abi.ImportPublish, "a.b", abi.StatusDenied, "", `pycomms: capability "publish" not granted to this plugin`},
		{abi.ImportCall, "a.b", abi.StatusDenied, "stale text", `pycomms: capability "call" not granted to this plugin`},
		{abi.ImportSend, "a.b", abi.StatusDenied, "", `pycomms: capability "send" not granted to this plugin`},
		{abi.ImportLog, "", abi.StatusDenied, "", `pycomms: capability "log" not granted to this plugin`},
		{abi.ImportSend, "a.b", abi.StatusNoHandler, "", `pycomms: send "a.b": no_handler`},
		{abi.ImportLog, "", abi.StatusInvalid, "", `pycomms: log: invalid`},
		{abi.ImportCall, "a.b", abi.StatusTimeout, "a.b: deadline passed", `a.b: deadline passed`},
	} {
		err := hostError(tc.op, tc.target, tc.st, tc.text)
		if err.Status != tc.st || err.Error() != tc.want {
			t.Errorf("hostError(%s, %s, %s) = {%s, %q}, want {%s, %q}", tc.op, tc.target, tc.st, err.Status, err.Error(), tc.st, tc.want)
		}
	}
}
