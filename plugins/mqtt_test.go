package plugins

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	mqttWasmPath  = "plugins/mqtt/mqtt.wasm"
	mqttToolchain = "plugins/mqtt/mqtt.wasm.clang-version"
)

// TestMQTTIsFresh: plugins/mqtt/mqtt.wasm is what scripts/build-fixtures.sh
// builds from plugins/mqtt/mqtt.c and the C SDK today (compared when the
// local toolchain is the recorded one), and a transport by its exports.
func TestMQTTIsFresh(t *testing.T) {
	committed, err := os.ReadFile(inRepo(mqttWasmPath))
	if err != nil {
		t.Fatal(err)
	}
	checkTransportExports(t, mqttWasmPath, committed)
	if b, ok := Builtin("mqtt"); !ok || !bytes.Equal(b, committed) {
		t.Errorf("builtin:mqtt is not plugins/mqtt/mqtt.wasm")
	}

	requireTool(t, "clang-14")
	out := build(t, "c")
	committedID, err := os.ReadFile(inRepo(mqttToolchain))
	if err != nil {
		t.Fatalf("%v (run %s)", err, buildScript)
	}
	localID, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(mqttToolchain)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committedID, localID) {
		t.Skipf("%s was built with a different toolchain, so its bytes are not compared:\ncommitted:\n%slocal:\n%s",
			mqttWasmPath, committedID, localID)
	}
	fresh, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(mqttWasmPath)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, fresh) {
		t.Errorf("%s is stale: it differs from what %s builds from plugins/mqtt/mqtt.c and sdk/c (%d vs %d bytes); run %s and commit the result",
			mqttWasmPath, buildScript, len(committed), len(fresh), buildScript)
	}
}

// TestMQTTMapping runs the plugin's mapping (plugins/mqtt/topic.h, built
// natively with clang-14) through the table of plugins/mqtt/README.md:
// topic names to subjects, subjects to topic names, subject patterns to
// topic filters, and every refusal with its reason.
func TestMQTTMapping(t *testing.T) {
	requireTool(t, "clang-14")
	bin := filepath.Join(t.TempDir(), "topic_driver")
	// -Wno-unused-function: the driver uses only part of the header.
	cc := exec.Command("clang-14", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function",
		"-o", bin, inRepo("plugins/mqtt/testdata/topic_driver.c"))
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cc.Args, err, out)
	}
	long := strings.Repeat("a", 1025)
	cases := []struct {
		op, in string
		want   string // "= result" or "! part of the reason"
	}{
		// MQTT topic name (a PUBLISH from the broker) -> subject
		{"t", "a/b/c", "= a.b.c"},
		{"t", "sensors/room-1/temp_C", "= sensors.room-1.temp_C"},
		{"t", "a", "= a"},
		{"t", "$SYS/broker/uptime", "= $SYS.broker.uptime"},
		{"t", "a/b.c", "! contains '.'"},
		{"t", "a//b", "! empty level"},
		{"t", "/a", "! empty level"},
		{"t", "a/", "! empty level"},
		{"t", "", "! empty topic"},
		{"t", "a/*/b", "! subject wildcards"},
		{"t", "a/>", "! subject wildcards"},
		{"t", "a/x*y", "! subject wildcards"},
		{"t", "a/+", "! wildcard ('+' or '#')"},
		{"t", "a/b c", "! printable ASCII"},
		{"t", "a/\u00e9t\u00e9", "! printable ASCII"},
		{"t", long, "! longer"},
		// subject (an event or send routed out) -> MQTT topic name
		{"s", "echo.events", "= echo/events"},
		{"s", "a", "= a"},
		{"s", "a.b/c", "! '/', '+' or '#'"},
		{"s", "a.+", "! '/', '+' or '#'"},
		{"s", "a.#", "! '/', '+' or '#'"},
		{"s", "a.*", "! a wildcard in a subject that names one topic"},
		{"s", "a.>", "! a wildcard in a subject that names one topic"},
		{"s", "a..b", "! empty token"},
		{"s", "", "! empty subject"},
		// subject pattern (plugin config subscribe) -> MQTT topic filter
		{"f", "greetings.>", "= greetings/#"},
		{"f", "a.*.c", "= a/+/c"},
		{"f", "*", "= +"},
		{"f", ">", "= #"},
		{"f", "a.*.>", "= a/+/#"},
		{"f", "a.>.b", "! '>' before the last token"},
		{"f", "a.b*", "! inside a longer token"},
		{"f", "a.b/c.>", "! '/', '+' or '#'"},
		{"f", ".a", "! empty token"},
	}
	var in bytes.Buffer
	for _, c := range cases {
		in.WriteString(c.op + " " + hex.EncodeToString([]byte(c.in)) + "\n")
	}
	run := exec.Command(bin)
	run.Stdin = &in
	out, err := run.Output()
	if err != nil {
		t.Fatalf("topic_driver: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(cases) {
		t.Fatalf("topic_driver answered %d of %d cases:\n%s", len(got), len(cases), out)
	}
	for i, c := range cases {
		ok := got[i] == c.want
		if strings.HasPrefix(c.want, "! ") {
			ok = strings.HasPrefix(got[i], "! ") && strings.Contains(got[i], c.want[2:])
		}
		if !ok {
			t.Errorf("%s %q: got %q, want %q", c.op, c.in, got[i], c.want)
		}
	}
}
