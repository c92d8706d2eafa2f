package abi

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCHeaderMatchesABI: the C SDK's header defines every status, kind
// and queue name with the value package abi gives it, so an ABI addition
// that did not reach the C SDK (SPEC section 1: every SDK) is caught.
func TestCHeaderMatchesABI(t *testing.T) {
	b, err := os.ReadFile("../sdk/c/pycomms.h")
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^#define (PC_[A-Z0-9_]+) +("[^"]*"|-?[0-9]+)`).FindAllStringSubmatch(string(b), -1) {
		defs[m[1]] = m[2]
	}
	want := map[string]string{
		"PC_ABI_VERSION":          strconv.Itoa(int(MaxVersion)),
		"PC_KIND_REQUEST":         strconv.Itoa(int(KindRequest)),
		"PC_KIND_SEND":            strconv.Itoa(int(KindSend)),
		"PC_KIND_EVENT":           strconv.Itoa(int(KindEvent)),
		"PC_QUEUE_SUBJECT_PREFIX": strconv.Quote(QueueSubjectPrefix),
		"PC_HEADER_QUEUE_ID":      strconv.Quote(HeaderQueueID),
		"PC_HEADER_ATTEMPT":       strconv.Quote(HeaderAttempt),
	}
	for _, s := range Statuses() {
		want["PC_"+strings.ToUpper(s.String())] = strconv.Itoa(int(s))
	}
	for name, v := range want {
		if defs[name] != v {
			t.Errorf("sdk/c/pycomms.h: %s is %q, want %s", name, defs[name], v)
		}
	}
}
