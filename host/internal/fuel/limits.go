package fuel

import (
	"fmt"
	"math"
)

// The largest module Instrument accepts and the most of each thing it may
// declare. They are checked before any byte reaches wazero, whose decoder
// allocates from a declared count before reading the items: one function
// type declaring 2^32-1 parameters is 18 bytes and asked for 4 GiB. Each
// count is also checked against the bytes left in its section, so a count
// can only be as large as the module that carries it. Most figures are
// the implementation limits of the WebAssembly JS API (every browser
// enforces them, so toolchains stay inside them); the ones lower than the
// JS API's (types, globals, tables, element items, names) bound structures
// wazero keeps per entry at tens of bytes each. abi/SPEC.md lists them.
const (
	MaxModule       = 1 << 30   // bytes; the per-plugin limits.max_module is usually far lower
	MaxTypes        = 100_000   // function types
	MaxParams       = 1_000     // parameters of one function type
	MaxResults      = 1_000     // results of one function type
	MaxImports      = 100_000   // imports of every kind
	MaxFunctions    = 1_000_000 // functions, imported and defined
	MaxTables       = 100       // tables, imported and defined
	MaxTableEntries = 1 << 20   // initial table elements, summed over every table
	MaxMemories     = 1         // wazero supports one memory
	MaxMemoryPages  = 65_536    // initial and maximum pages of a 32-bit memory
	MaxTags         = 100_000   // exception tags, imported and defined
	MaxGlobals      = 100_000   // globals, imported and defined
	MaxExports      = 100_000   // exports
	MaxElemSegments = 100_000   // element segments
	MaxElemItems    = 1 << 20   // element segment items, summed over every segment
	MaxDataSegments = 100_000   // data segments
	MaxFunctionSize = 7_654_321 // bytes of one function body
	MaxLocals       = 50_000    // locals declared by one function
	MaxModuleLocals = 1 << 23   // locals declared by every function together
	MaxNames        = 1 << 21   // entries of the name section (function, local and label names)
)

// count reads a vector length and refuses it when it exceeds max or when
// the bytes left could not hold that many items of at least minSize bytes.
func (r *reader) count(what string, minSize int, max uint32) uint32 {
	n := r.u32()
	if r.err != nil {
		return 0
	}
	if n > max {
		r.err = fmt.Errorf("%d %s declared, more than the %d allowed", n, what, max)
		return 0
	}
	if left := len(r.b) - r.pos; uint64(n)*uint64(minSize) > uint64(left) {
		r.err = fmt.Errorf("%d %s declared, but only %d bytes remain", n, what, left)
		return 0
	}
	return n
}

// index reads an index into a space of n entries of the original module.
// The rewriter appends a type, a function and a global; an index past the
// original ones must be refused here, or it would name those.
func (r *reader) index(what string, n uint32) uint32 {
	at := r.pos
	i := r.u32()
	if r.err == nil && i >= n {
		r.err = fmt.Errorf("%s index %d out of range (the module has %d) at offset %d", what, i, n, at)
	}
	return i
}

// s33 reads a signed 33-bit LEB128 number (block types, heap types).
func (r *reader) s33() int64 {
	start := r.pos
	var v int64
	var shift uint
	for {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			break
		}
		if shift >= 35 {
			r.err = fmt.Errorf("s33 too long at offset %d", start)
			return 0
		}
	}
	if v < -(1<<32) || v >= 1<<32 {
		r.err = fmt.Errorf("s33 out of range at offset %d", start)
		return 0
	}
	return v
}

// heapType checks a heap type: abstract ones are negative, a concrete one
// is a type index.
func (r *reader) heapType(types uint32) {
	at := r.pos
	if ht := r.s33(); r.err == nil && ht >= 0 && ht >= int64(types) {
		r.err = fmt.Errorf("type index %d out of range (the module has %d) at offset %d", ht, types, at)
	}
}

// valType reads a value type; a typed reference names a type by index.
func (r *reader) valType(types uint32) {
	at := r.pos
	switch b := r.byte(); b {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69: // i32 i64 f32 f64 v128 funcref externref exnref
	case 0x63, 0x64: // (ref null ht), (ref ht)
		r.heapType(types)
	default:
		if r.err == nil {
			r.err = fmt.Errorf("unknown value type %#x at offset %d", b, at)
		}
	}
}

// blockType reads a block type: empty, one value type or a type index.
// It returns the type index, or -1 for the other two.
func (r *reader) blockType(types uint32) int64 {
	at := r.pos
	bt := r.s33()
	if r.err != nil || bt < 0 {
		return -1 // 0x40 (empty) and the one-byte value types are negative
	}
	if bt >= int64(types) {
		r.err = fmt.Errorf("block type index %d out of range (the module has %d types) at offset %d", bt, types, at)
		return -1
	}
	return bt
}

// limits reads limits and returns the initial size.
func (r *reader) limits(what string, maxMin uint64) uint64 {
	at := r.pos
	flags := r.byte()
	if r.err == nil && flags > 7 {
		r.err = fmt.Errorf("%s: unknown limits flags %#x at offset %d", what, flags, at)
		return 0
	}
	lo := r.u64()
	var hi uint64 = math.MaxUint64
	if flags&1 != 0 {
		hi = r.u64()
	}
	if r.err != nil {
		return 0
	}
	if lo > maxMin {
		r.err = fmt.Errorf("%s: initial size %d, more than the %d allowed", what, lo, maxMin)
		return 0
	}
	if flags&1 != 0 && hi < lo {
		r.err = fmt.Errorf("%s: maximum %d below the initial size %d", what, hi, lo)
	}
	return lo
}

func (r *reader) u64() uint64 {
	start := r.pos
	var v uint64
	for shift := 0; ; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
		if shift >= 63 {
			r.err = fmt.Errorf("u64 too long at offset %d", start)
			return 0
		}
	}
}

// tableType reads a reference type and table limits, adding the initial
// size to the module's total.
func (in *instrumenter) tableType(r *reader) {
	r.valType(in.types)
	n := r.limits("table", MaxTableEntries)
	in.tableEntries += n
	if r.err == nil && in.tableEntries > MaxTableEntries {
		r.err = fmt.Errorf("tables hold %d initial elements together, more than the %d allowed", in.tableEntries, MaxTableEntries)
	}
}

func (in *instrumenter) add(r *reader, what string, n *uint32, k, max uint32) {
	if r.err != nil {
		return
	}
	if uint64(*n)+uint64(k) > uint64(max) {
		r.err = fmt.Errorf("%d %s, more than the %d allowed", uint64(*n)+uint64(k), what, max)
		return
	}
	*n += k
}

// scan walks every section but the code, element, export, start and name
// sections (which rewrite walks), bounding every count and checking every
// index against the original module, and records the counts the rewrite
// needs. Errors name the section and the count or index.
func (in *instrumenter) scan(secs []section) error {
	for _, s := range secs {
		r := &reader{b: s.body}
		switch s.id {
		case secType:
			n := r.count("types", 3, MaxTypes)
			in.types = n
			for i := uint32(0); i < n && r.err == nil; i++ {
				if form := r.byte(); r.err == nil && form != 0x60 {
					return fmt.Errorf("type section: type %d: unsupported form %#x (want 0x60, a function type)", i, form)
				}
				p := r.count(fmt.Sprintf("parameters in type %d", i), 1, MaxParams)
				in.params = append(in.params, p)
				at := len(in.paramTypes)
				for k := uint32(0); k < p && r.err == nil; k++ {
					if r.pos < len(r.b) {
						in.paramTypes = append(in.paramTypes, r.b[r.pos])
					}
					r.valType(n)
				}
				in.paramAt = append(in.paramAt, uint32(at))
				q := r.count(fmt.Sprintf("results in type %d", i), 1, MaxResults)
				for k := uint32(0); k < q && r.err == nil; k++ {
					r.valType(n)
				}
			}
		case secImport:
			n := r.count("imports", 4, MaxImports)
			for i := uint32(0); i < n && r.err == nil; i++ {
				mod := r.name()
				r.name()
				if mod == ImportModule {
					return fmt.Errorf("import section: import %d is from %q, which is reserved for the host", i, ImportModule)
				}
				switch kind := r.byte(); kind {
				case 0:
					r.index("type", in.types)
					in.add(r, "functions", &in.funcImports, 1, MaxFunctions)
				case 1:
					in.tableType(r)
					in.add(r, "tables", &in.tables, 1, MaxTables)
				case 2:
					r.limits("memory", MaxMemoryPages)
					in.add(r, "memories", &in.memories, 1, MaxMemories)
				case 3:
					r.valType(in.types)
					r.byte() // mutability
					in.add(r, "globals", &in.globalImports, 1, MaxGlobals)
				case 4:
					r.byte() // attribute
					r.index("type", in.types)
					in.add(r, "tags", &in.tags, 1, MaxTags)
				default:
					if r.err == nil {
						return fmt.Errorf("import section: import %d: unknown import kind %#x", i, kind)
					}
				}
			}
			in.funcs = in.funcImports
		case secFunction:
			n := r.count("functions", 1, MaxFunctions)
			in.add(r, "functions", &in.funcs, n, MaxFunctions)
			in.defined = n
			for i := uint32(0); i < n && r.err == nil; i++ {
				in.funcTypes = append(in.funcTypes, r.index("type", in.types))
			}
		case secTable:
			n := r.count("tables", 3, MaxTables)
			in.add(r, "tables", &in.tables, n, MaxTables)
			for i := uint32(0); i < n && r.err == nil; i++ {
				if len(r.b) > r.pos && r.b[r.pos] == 0x40 { // table with an initializer
					r.byte()
					if b := r.byte(); r.err == nil && b != 0 {
						return fmt.Errorf("table section: table %d: byte %#x after 0x40, want 0", i, b)
					}
					in.tableType(r)
					if _, err := in.code(r, nil, false, true); err != nil {
						return fmt.Errorf("table section: table %d initializer: %w", i, err)
					}
					continue
				}
				in.tableType(r)
			}
		case secMemory:
			n := r.count("memories", 2, MaxMemories)
			in.add(r, "memories", &in.memories, n, MaxMemories)
			for i := uint32(0); i < n && r.err == nil; i++ {
				r.limits("memory", MaxMemoryPages)
			}
		case secTag:
			n := r.count("tags", 2, MaxTags)
			in.add(r, "tags", &in.tags, n, MaxTags)
			for i := uint32(0); i < n && r.err == nil; i++ {
				r.byte()
				r.index("type", in.types)
			}
		case secGlobal:
			// Initializers are walked by rewrite; the count is enough here.
			n := r.count("globals", 3, MaxGlobals)
			in.globals = n
			in.add(r, "globals", new(uint32), in.globalImports+n, MaxGlobals)
			if r.err != nil {
				return fmt.Errorf("global section: %w", r.err)
			}
			continue
		case secDataCount:
			n := r.u32()
			if r.err == nil && n > MaxDataSegments {
				return fmt.Errorf("data count section: %d data segments declared, more than the %d allowed", n, MaxDataSegments)
			}
		case secData:
			n := r.count("data segments", 1, MaxDataSegments)
			for i := uint32(0); i < n && r.err == nil; i++ {
				flags := r.u32()
				if r.err == nil && flags > 2 {
					return fmt.Errorf("data section: segment %d: unknown flags %d", i, flags)
				}
				if flags == 2 {
					r.index("memory", in.memories)
				}
				if flags != 1 {
					if _, err := in.code(r, nil, false, true); err != nil {
						return fmt.Errorf("data section: segment %d offset: %w", i, err)
					}
				}
				r.bytes(int(r.u32()))
			}
		default:
			continue
		}
		if r.err != nil {
			return fmt.Errorf("%s section: %w", sectionName(s.id), r.err)
		}
		if !r.done() {
			return fmt.Errorf("%s section: %d bytes after its last entry", sectionName(s.id), len(r.b)-r.pos)
		}
	}
	return nil
}

func sectionName(id byte) string {
	switch id {
	case secCustom:
		return "custom"
	case secType:
		return "type"
	case secImport:
		return "import"
	case secFunction:
		return "function"
	case secTable:
		return "table"
	case secMemory:
		return "memory"
	case secGlobal:
		return "global"
	case secExport:
		return "export"
	case secStart:
		return "start"
	case secElement:
		return "element"
	case secCode:
		return "code"
	case secData:
		return "data"
	case secDataCount:
		return "data count"
	case secTag:
		return "tag"
	}
	return fmt.Sprintf("unknown (id %d)", id)
}
