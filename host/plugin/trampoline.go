package plugin

// The trampoline is a tiny Wasm module, generated per instance, that runs the
// message loop *inside* Wasm:
//
//	loop:
//	  if next(status) == 0 { return }        // host: finish the previous message, wait for the next
//	  p = <instance>.pycomms_alloc(slen+plen+hlen)
//	  fill(p)                                // host: copy subject|payload|headers to p
//	  status = <instance>.pycomms_handle(kind, p, slen, plen, hlen)
//
// Why: wazero can only interrupt a guest when the runtime is built with
// WithCloseOnContextDone, and then every host->guest call starts a watcher
// goroutine (~1.3-4.7 µs here). With the loop in Wasm, a worker makes one
// host->guest call per instance lifetime; each message costs two cheap
// guest->host calls and two Wasm->Wasm calls, and the deadline is enforced
// by a watchdog that closes the trampoline module (which stops the guest at
// its next loop header). See RATIONALE.md.
//
// The plugin's exports reach the trampoline by ordinary Wasm import linking,
// so the instance it drives is named in its import section: the module bytes
// depend on that name only, and names are reused per worker slot so the
// compilation cache stays bounded.

const (
	internalModule = "pycomms:internal"
	fnNext         = "next"
	fnFill         = "fill"
	fnServe        = "serve"
	globalKind     = "kind"
	globalSubject  = "slen"
	globalPayload  = "plen"
	globalHeaders  = "hlen"
)

// trampolineWasm returns the binary of the trampoline importing pycomms_alloc
// and pycomms_handle from the module named instance.
func trampolineWasm(instance string) []byte {
	const (
		i32    = 0x7f
		fnType = 0x60
	)
	var b []byte
	b = append(b, 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00)

	// Types: 0 (i32)->i32 [next, alloc], 1 (i32)->() [fill],
	// 2 (i32 x5)->i32 [handle], 3 ()->() [serve].
	types := []byte{4,
		fnType, 1, i32, 1, i32,
		fnType, 1, i32, 0,
		fnType, 5, i32, i32, i32, i32, i32, 1, i32,
		fnType, 0, 0,
	}
	b = appendSection(b, 1, types)

	var imp []byte
	imp = append(imp, 4)
	imp = appendImportFunc(imp, internalModule, fnNext, 0)
	imp = appendImportFunc(imp, internalModule, fnFill, 1)
	imp = appendImportFunc(imp, instance, "pycomms_alloc", 0)
	imp = appendImportFunc(imp, instance, "pycomms_handle", 2)
	b = appendSection(b, 2, imp)

	b = appendSection(b, 3, []byte{1, 3}) // one function of type 3

	globals := []byte{4}
	for range 4 {
		globals = append(globals, i32, 1, 0x41, 0, 0x0b) // mut i32 = i32.const 0
	}
	b = appendSection(b, 6, globals)

	var exp []byte
	exp = append(exp, 5)
	exp = appendName(exp, fnServe)
	exp = append(exp, 0x00, 4) // func 4 (after 4 imports)
	for i, g := range []string{globalKind, globalSubject, globalPayload, globalHeaders} {
		exp = appendName(exp, g)
		exp = append(exp, 0x03, byte(i))
	}
	b = appendSection(b, 7, exp)

	// Locals: 0 = status, 1 = pointer. Function indexes: 0 next, 1 fill,
	// 2 alloc, 3 handle. Globals: 0 kind, 1 slen, 2 plen, 3 hlen.
	body := []byte{
		1, 2, i32, // one local group: 2 x i32
		0x02, 0x40, // block
		0x03, 0x40, // loop
		0x20, 0, 0x10, 0, // local.get status; call next
		0x45, 0x0d, 1, // i32.eqz; br_if 1 (leave the block)
		0x23, 1, 0x23, 2, 0x6a, 0x23, 3, 0x6a, // slen+plen+hlen
		0x10, 2, 0x21, 1, // call alloc; local.set ptr
		0x20, 1, 0x10, 1, // local.get ptr; call fill
		0x23, 0, 0x20, 1, 0x23, 1, 0x23, 2, 0x23, 3, // kind ptr slen plen hlen
		0x10, 3, 0x21, 0, // call handle; local.set status
		0x0c, 0, // br 0 (next iteration)
		0x0b, // end loop
		0x0b, // end block
		0x0b, // end function
	}
	code := []byte{1}
	code = appendU32(code, uint32(len(body)))
	code = append(code, body...)
	b = appendSection(b, 10, code)
	return b
}

func appendSection(b []byte, id byte, content []byte) []byte {
	b = append(b, id)
	b = appendU32(b, uint32(len(content)))
	return append(b, content...)
}

func appendImportFunc(b []byte, module, name string, typeIndex byte) []byte {
	b = appendName(b, module)
	b = appendName(b, name)
	return append(b, 0x00, typeIndex)
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// appendU32 appends v as unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
