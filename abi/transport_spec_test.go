package abi

import (
	"strconv"
	"testing"
)

// TestSpecTransport keeps SPEC.md section 13 in step with transport.go:
// the export, the events and the action imports.
func TestSpecTransport(t *testing.T) {
	spec := readSpec(t)
	exports := map[string]bool{}
	for _, r := range table(t, spec, "### 13.1 Exports") {
		exports[r[0]] = true
	}
	for _, name := range []string{ExportABIVersion, ExportAlloc, ExportTransportEvent, ExportMemory} {
		if !exports[name] {
			t.Errorf("transport export %q is in the package but not in SPEC.md 13.1", name)
		}
		delete(exports, name)
	}
	for name := range exports {
		t.Errorf("transport export %q is in SPEC.md 13.1 but not in the package", name)
	}

	events := map[string]TransportEvent{}
	for _, e := range TransportEvents() {
		events[e.String()] = e
	}
	for _, r := range table(t, spec, "### 13.2 Events") {
		e, ok := events[r[0]]
		if !ok {
			t.Errorf("event %q is in SPEC.md but not in the package", r[0])
			continue
		}
		if strconv.Itoa(int(e)) != r[1] {
			t.Errorf("event %q: SPEC.md %s, package %d", r[0], r[1], e)
		}
		delete(events, r[0])
	}
	for name := range events {
		t.Errorf("event %q is in the package but not in SPEC.md", name)
	}

	byName := map[string]Import{}
	for _, im := range TransportImports() {
		byName[im.Name] = im
	}
	for _, r := range table(t, spec, "### 13.3 Actions (imports, module `pycomms:host/v1`)") {
		im, ok := byName[r[0]]
		if !ok {
			t.Errorf("action %q is in SPEC.md but not in TransportImports", r[0])
			continue
		}
		if r[1] != im.Signature() {
			t.Errorf("action %q: SPEC.md signature %q, package %q", r[0], r[1], im.Signature())
		}
		delete(byName, r[0])
	}
	for name := range byName {
		t.Errorf("action %q is in the package but not in SPEC.md", name)
	}
	for _, im := range TransportImports() {
		if _, clash := ImportCapability(im.Name); clash {
			t.Errorf("action %q has the name of a handler import", im.Name)
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, c := range []struct {
		exports []string
		want    PluginKind
		ok      bool
	}{
		{[]string{ExportABIVersion, ExportAlloc, ExportHandle}, PluginHandler, true},
		{[]string{ExportABIVersion, ExportAlloc, ExportTransportEvent}, PluginTransport, true},
		{[]string{ExportHandle, ExportTransportEvent}, "", false},
		{[]string{ExportAlloc}, "", false},
	} {
		got, err := KindOf(c.exports)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("KindOf(%v) = %q, %v; want %q, ok %v", c.exports, got, err, c.want, c.ok)
		}
	}
}
