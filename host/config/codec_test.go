package config

import (
	"slices"
	"strings"
	"testing"
)

// TestContentTypeKeys: accepts and encodings decode lower-cased, and every
// mistake names its key and index; a codec has none of them.
func TestContentTypeKeys(t *testing.T) {
	good := writeConfig(t, `plugins:
  - name: h
    path: builtin:echo
    services: [h]
    accepts: [application/cbor, Application/JSON]
    encodings: [GZIP]
  - name: c
    path: builtin:echo
    kind: codec
`)
	c, err := Load(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Plugins[0]; !slices.Equal(p.Accepts, []string{"application/cbor", "application/json"}) || !slices.Equal(p.Encodings, []string{"gzip"}) {
		t.Errorf("decoded accepts %v encodings %v", p.Accepts, p.Encodings)
	}
	if p := c.Plugins[1]; p.Kind != "codec" || p.Accepts != nil {
		t.Errorf("codec decoded as %+v", p)
	}

	bad := writeConfig(t, `plugins:
  - name: h
    path: builtin:echo
    accepts: [application/cbor, "application/json; charset=utf-8", "*/*", text, application/cbor]
    encodings: [gzip, identity, "x y"]
  - name: c
    path: builtin:echo
    kind: codec
    services: [conv]
    accepts: [application/cbor]
  - name: e
    path: builtin:echo
    encodings: [gzip]
  - name: f
    path: builtin:echo
    accepts: []
`)
	_, err = Load(bad, nil)
	if err == nil {
		t.Fatal("a bad accepts config loaded")
	}
	msg := err.Error()
	for _, want := range []string{
		`plugins[0].accepts[1]: "application/json; charset=utf-8" is not a media type`,
		`plugins[0].accepts[2]: "*/*" is not a media type`,
		`plugins[0].accepts[3]: "text" is not a media type`,
		`plugins[0].accepts[4]: "application/cbor" is listed twice (first at accepts[0])`,
		`plugins[0].encodings[1]: "identity" is not a content coding`,
		`plugins[0].encodings[2]: "x y" is not a content coding`,
		`plugins[1].services: a codec plugin has no services`,
		`plugins[1].accepts: a codec plugin has no accepts`,
		`plugins[2].encodings: needs accepts`,
		`plugins[3].accepts: is empty`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors lack %q:\n%s", want, msg)
		}
	}
}
