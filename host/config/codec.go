package config

import (
	"mime"
	"strings"

	"github.com/pycomms/pycomms-host/abi"
)

// contentTypes decodes accepts and encodings (abi/SPEC.md section 14.5)
// of plugin p: media types and content codings a handler or transport
// takes as they are. A codec converts, so it has neither, and no
// services or topics either.
func (d *decoder) contentTypes(p *Plugin, m map[string]any, key func(string) string) {
	if p.Kind == "codec" {
		for _, k := range []string{"accepts", "encodings", "services", "topics"} {
			if m[k] != nil {
				d.fail(key(k), "a codec plugin has no %s: it converts payloads for the other plugins, and receives no messages", k)
			}
		}
		return
	}
	if items, ok := d.strList(key("accepts"), m["accepts"]); ok {
		p.Accepts = []string{}
		first := map[string]int{}
		for _, it := range items {
			k := indexKey(key("accepts"), it.index)
			t := strings.ToLower(strings.TrimSpace(it.s))
			if mt, params, err := mime.ParseMediaType(t); err != nil || len(params) > 0 || mt != t || abi.CheckMediaType(t) != nil {
				d.fail(k, "%s is not a media type: write type/subtype without parameters or wildcards, e.g. application/cbor", quote(it.s))
				continue
			}
			if j, dup := first[t]; dup {
				d.fail(k, "%q is listed twice (first at accepts[%d])", t, j)
				continue
			}
			first[t] = it.index
			p.Accepts = append(p.Accepts, t)
		}
		if len(items) == 0 {
			d.fail(key("accepts"), "is empty: list the media types the plugin takes (e.g. [application/cbor]), or leave accepts out to get payloads as they are")
		}
	}
	if items, ok := d.strList(key("encodings"), m["encodings"]); ok {
		p.Encodings = []string{}
		first := map[string]int{}
		for _, it := range items {
			k := indexKey(key("encodings"), it.index)
			t := strings.ToLower(strings.TrimSpace(it.s))
			if abi.CheckMediaType("x/"+t) != nil || t == abi.Identity {
				d.fail(k, "%s is not a content coding: write a token such as gzip (identity is always taken)", quote(it.s))
				continue
			}
			if j, dup := first[t]; dup {
				d.fail(k, "%q is listed twice (first at encodings[%d])", t, j)
				continue
			}
			first[t] = it.index
			p.Encodings = append(p.Encodings, t)
		}
		if m["accepts"] == nil && len(p.Encodings) > 0 {
			d.fail(key("encodings"), "needs accepts: only a plugin that declares the media types it takes gets payloads converted")
		}
	}
}
