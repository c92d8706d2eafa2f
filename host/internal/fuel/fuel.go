// Package fuel rewrites a WebAssembly module so that the host can interrupt
// it cheaply: every function entry and every loop header decrements a fuel
// counter (a new mutable i32 global), and when it reaches zero the guest
// calls the host import pycomms:internal.tick, which either refills the
// counter or, when the host wants the guest stopped, panics and ends the call.
// A tight loop (no call, no nested loop) counts its iterations in a local
// of its function instead, which stays in a register, and pays the global
// once per Batch iterations (see countedLoop).
//
// Why not wazero's WithCloseOnContextDone? It starts a watcher goroutine on
// every host->guest call (1.3-4.7 µs here) and makes every loop iteration
// exit to Go to check for closure (~25 ns per iteration measured here: a
// 64-byte uppercase loop went from ~50 ns to ~1.8 µs). The fuel check is a
// load, a subtract, a store and a branch, and the host is entered once per
// Period iterations, which also gives Go's scheduler and garbage collector
// a preemption point at least that often. See RATIONALE.md.
//
// The rewrite adds two types, two function imports (tick and grow,
// appended after the other imports, so every defined function's index
// grows by two and every reference to it is renumbered: calls, ref.func,
// exports, start, element segments, the name section), one global
// (appended, so nothing else moves) and, to each function with a tight
// loop, one i32 local after its own (every local index is checked against
// the function's own locals, so none can name it). Instructions the rewriter does not know make Instrument fail with
// an error naming the opcode: a module is never half-instrumented. DWARF
// sections are dropped, since code offsets move.
package fuel

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Names of the imports the instrumented module expects.
const (
	ImportModule = "pycomms:internal"
	ImportTick   = "tick" // () -> i32: returns the new fuel
	// ImportGrow replaces every memory.grow of memory 0 in a function
	// body: (delta i32) -> i32, with memory.grow's meaning (the previous
	// size in pages, or -1). It lets the host see a grow that failed,
	// which leaves no other trace, so that a trap after it can be
	// reported as the memory cap. memory.grow is rare: the call costs
	// nothing that matters.
	ImportGrow = "grow"
)

// Period is the fuel a module starts with and the host refills on a tick:
// the number of loop iterations and function entries between host checks
// (a tight loop pays in batches, and a call of its function more than 1:
// see Batch).
const Period = 1 << 14

// Batch is how many iterations of its tight loops a function runs
// between two payments to the fuel: its loop counter starts at Batch,
// and each time it runs out the function pays Batch and starts again.
// What is left when the function returns is never paid, so each call of
// a function with a tight loop also pays loopEntry instead of 1 at entry:
// between two ticks a guest runs at most about Period*Batch/loopEntry
// (16*Period) iterations, whatever its shape. Smaller batches cost more
// in a tight loop (256: +3% in the 64 KiB echo, 64: +40%), larger ones
// no less (4096 and 16384 measured as 1024).
const Batch = 1024

// loopEntry is what a call of a function with a tight loop pays at entry
// (see Batch): a tick every Period/loopEntry such calls at most.
const loopEntry = Batch / 16

const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionOrder is the position of each known section id in a valid module,
// used to insert sections the input lacks at the right place.
var sectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

type section struct {
	id   byte
	body []byte
}

// Instrument returns the instrumented copy of module. It refuses, with an
// error naming the section and the count or index, a module larger than
// MaxModule, one that declares more of anything than the Max constants
// allow or than its bytes could hold, and one whose indexes reach past what
// it declares: such an index would otherwise name the type, function or
// global the rewrite appends (a guest writing its own fuel counter could
// never be stopped). Everything else is left to wazero's validation, which
// refuses the instrumented copy of any module it would refuse unrewritten.
func Instrument(module []byte) ([]byte, error) {
	if len(module) < 8 || string(module[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly module (no \\0asm header)")
	}
	if module[4] != 1 || module[5] != 0 || module[6] != 0 || module[7] != 0 {
		return nil, fmt.Errorf("unsupported WebAssembly binary version %x", module[4:8])
	}
	if len(module) > MaxModule {
		return nil, fmt.Errorf("module is %d bytes, more than the %d allowed", len(module), MaxModule)
	}
	var secs []section
	r := &reader{b: module, pos: 8}
	last := 0
	for !r.done() {
		at := r.pos
		id := r.byte()
		n := r.u32()
		body := r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("%s section at offset %d: %w", sectionName(id), at, r.err)
		}
		if id != secCustom {
			o, ok := sectionOrder[id]
			if !ok {
				return nil, fmt.Errorf("unknown section id %d at offset %d", id, at)
			}
			if o <= last {
				return nil, fmt.Errorf("%s section at offset %d is out of order or repeated", sectionName(id), at)
			}
			last = o
		} else {
			// A custom section's name must fit in it; the rewrite keeps
			// custom sections, so a malformed one is refused, not dropped.
			cr := &reader{b: body}
			cr.name()
			if cr.err != nil {
				return nil, fmt.Errorf("custom section at offset %d: name: %w", at, cr.err)
			}
		}
		secs = append(secs, section{id, body})
	}
	in := &instrumenter{}
	if err := in.scan(secs); err != nil {
		return nil, err
	}
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, want := range []byte{secType, secImport, secGlobal} {
		if !has(secs, want) {
			secs = insert(secs, section{id: want, body: []byte{0}})
		}
	}
	for _, s := range secs {
		body, keep, err := in.rewrite(s)
		if err != nil {
			return nil, err
		}
		if !keep {
			continue
		}
		out = append(out, s.id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	return out, nil
}

func has(secs []section, id byte) bool {
	for _, s := range secs {
		if s.id == id {
			return true
		}
	}
	return false
}

// insert puts s before the first known section that must follow it.
func insert(secs []section, s section) []section {
	for i, x := range secs {
		if o, ok := sectionOrder[x.id]; ok && o > sectionOrder[s.id] {
			return append(secs[:i], append([]section{s}, secs[i:]...)...)
		}
	}
	return append(secs, s)
}

// instrumenter holds the counts of the original module: every index is
// checked against them, and the appended entries sit just past them.
type instrumenter struct {
	types         uint32 // number of types before ours
	funcImports   uint32 // number of function imports before ours
	funcs         uint32 // functions, imported and defined
	defined       uint32 // entries of the function section
	globalImports uint32
	globals       uint32 // defined globals before ours
	tables        uint32
	memories      uint32
	tags          uint32
	tableEntries  uint64 // initial elements of every table together
	elemItems     uint64
	locals        uint64   // locals declared by every function so far
	nameCount     uint64   // entries of the name section so far
	params        []uint32 // parameters of each type
	paramAt       []uint32 // where each type's parameters start in paramTypes
	paramTypes    []byte   // the first byte of each parameter's value type
	funcTypes     []uint32 // type of each defined function

	// The function body being rewritten: its locals (parameters
	// included), which every local index is checked against; their types
	// (fnGroups); whether it has a tight loop, which gets it the loop
	// counter (local index fnLocals, one past its own); and the
	// look-ahead through a loop body under way, if any (see tightLoop).
	fnLocals uint32
	fnGroups []localGroup
	fnLoops  bool
	ahead    *loopScan
}

// localGroup is a run of locals of one type: those below end and at or
// above the previous group's end. t is the first byte of the value type.
type localGroup struct {
	end uint32
	t   byte
}

func (in *instrumenter) tickIndex() uint32   { return in.funcImports }
func (in *instrumenter) growIndex() uint32   { return in.funcImports + 1 }
func (in *instrumenter) fuelIndex() uint32   { return in.globalImports + in.globals }
func (in *instrumenter) globalCount() uint32 { return in.globalImports + in.globals }

// shift renumbers a function index for the two imports added after the
// others. The name section may name indexes past the last function; the
// largest indexes stay put rather than wrap around to 0.
func (in *instrumenter) shift(idx uint32) uint32 {
	if idx >= in.funcImports && idx < math.MaxUint32-1 {
		return idx + 2
	}
	return idx
}

func (in *instrumenter) rewrite(s section) ([]byte, bool, error) {
	r := &reader{b: s.body}
	var out []byte
	switch s.id {
	case secType:
		n := r.u32()
		out = appendU32(out, n+2)
		out = append(out, r.rest()...)
		out = append(out, 0x60, 0, 1, 0x7f)       // () -> i32: tick
		out = append(out, 0x60, 1, 0x7f, 1, 0x7f) // (i32) -> i32: grow
	case secImport:
		n := r.u32()
		out = appendU32(out, n+2)
		out = append(out, r.rest()...)
		out = appendName(out, ImportModule)
		out = appendName(out, ImportTick)
		out = append(out, 0x00)
		out = appendU32(out, in.types)
		out = appendName(out, ImportModule)
		out = appendName(out, ImportGrow)
		out = append(out, 0x00)
		out = appendU32(out, in.types+1)
	case secGlobal:
		n := r.u32() // bounded by scan
		out = appendU32(out, n+1)
		for i := uint32(0); i < n && r.err == nil; i++ {
			at := r.pos
			r.valType(in.types)
			out = append(out, r.b[at:r.pos]...)
			out = append(out, r.byte()) // mutability
			var err error
			if out, err = in.code(r, out, false, true); err != nil {
				return nil, false, fmt.Errorf("global section: global %d initializer: %w", i, err)
			}
		}
		out = append(out, 0x7f, 1, 0x41) // mut i32 = i32.const Period
		out = appendS32(out, Period)
		out = append(out, 0x0b)
	case secExport:
		n := r.count("exports", 3, MaxExports)
		out = appendU32(out, n)
		for i := uint32(0); i < n && r.err == nil; i++ {
			out = appendName(out, r.name())
			kind := r.byte()
			var idx uint32
			switch kind {
			case 0:
				idx = in.shift(r.index("function", in.funcs))
			case 1:
				idx = r.index("table", in.tables)
			case 2:
				idx = r.index("memory", in.memories)
			case 3:
				idx = r.index("global", in.globalCount())
			case 4:
				idx = r.index("tag", in.tags)
			default:
				if r.err == nil {
					return nil, false, fmt.Errorf("export section: export %d: unknown kind %#x", i, kind)
				}
			}
			out = append(out, kind)
			out = appendU32(out, idx)
		}
	case secStart:
		out = appendU32(out, in.shift(r.index("function", in.funcs)))
	case secElement:
		var err error
		if out, err = in.elements(r); err != nil {
			return nil, false, fmt.Errorf("element section: %w", err)
		}
	case secCode:
		n := r.count("function bodies", 2, MaxFunctions)
		if r.err == nil && n != in.defined {
			return nil, false, fmt.Errorf("code section: %d function bodies, but the function section declares %d", n, in.defined)
		}
		out = appendU32(out, n)
		for i := uint32(0); i < n && r.err == nil; i++ {
			size := r.u32()
			if r.err == nil && size > MaxFunctionSize {
				return nil, false, fmt.Errorf("code section: function %d: body of %d bytes, more than the %d allowed", in.funcImports+i, size, MaxFunctionSize)
			}
			fr := &reader{b: r.bytes(int(size))}
			var decl []byte // the local declarations, as they are
			groups := fr.count("local groups", 2, MaxLocals)
			ty := in.funcTypes[i]
			in.fnGroups = in.fnGroups[:0]
			for k, t := range in.paramTypes[in.paramAt[ty] : in.paramAt[ty]+in.params[ty]] {
				in.fnGroups = append(in.fnGroups, localGroup{uint32(k) + 1, t})
			}
			var locals uint64
			for g := uint32(0); g < groups && fr.err == nil; g++ {
				k := fr.u32()
				locals += uint64(k)
				decl = appendU32(decl, k)
				at := fr.pos
				fr.valType(in.types)
				decl = append(decl, fr.b[at:fr.pos]...)
				if fr.err == nil && locals <= MaxLocals {
					in.fnGroups = append(in.fnGroups, localGroup{in.params[ty] + uint32(locals), fr.b[at]})
				}
			}
			if fr.err != nil {
				return nil, false, fmt.Errorf("code section: function %d locals: %w", in.funcImports+i, fr.err)
			}
			if locals > MaxLocals {
				return nil, false, fmt.Errorf("code section: function %d: %d locals declared, more than the %d allowed", in.funcImports+i, locals, MaxLocals)
			}
			if in.locals += locals; in.locals > MaxModuleLocals {
				return nil, false, fmt.Errorf("code section: %d locals declared by functions up to %d, more than the %d allowed in a module", in.locals, in.funcImports+i, MaxModuleLocals)
			}
			in.fnLocals = in.params[ty] + uint32(locals)
			in.fnLoops = false
			code, err := in.code(fr, nil, true, false)
			if err != nil {
				return nil, false, fmt.Errorf("code section: function %d: %w", in.funcImports+i, err)
			}
			var body []byte
			if in.fnLoops {
				// The loop counter: one i32 local after the module's own,
				// so no index moves (code refused every index that reaches
				// it), set to Batch after the entry check.
				body = appendU32(body, groups+1)
				body = append(append(body, decl...), 1, 0x7f)
				body = in.check(body, loopEntry)
				body = append(body, 0x41)
				body = appendS32(body, Batch)
				body = append(body, 0x21)
				body = appendU32(body, in.fnLocals)
			} else {
				body = append(appendU32(body, groups), decl...)
				body = in.check(body, 1)
			}
			body = append(body, code...)
			if !fr.done() {
				return nil, false, fmt.Errorf("code section: function %d: %d bytes after the final end", in.funcImports+i, len(fr.b)-fr.pos)
			}
			out = appendU32(out, uint32(len(body)))
			out = append(out, body...)
		}
	case secCustom:
		name := r.name() // well-formed: checked when the sections were split
		if strings.HasPrefix(name, ".debug_") {
			return nil, false, nil
		}
		if name == "name" {
			body, err := in.names(r, name)
			if err != nil {
				return nil, false, fmt.Errorf("name section: %w", err)
			}
			return body, true, nil
		}
		return s.body, true, nil
	default:
		return s.body, true, nil
	}
	if r.err != nil {
		return nil, false, fmt.Errorf("%s section: %w", sectionName(s.id), r.err)
	}
	if !r.done() && s.id != secType && s.id != secImport {
		return nil, false, fmt.Errorf("%s section: %d trailing bytes", sectionName(s.id), len(r.b)-r.pos)
	}
	return out, true, nil
}

// check appends the fuel check, which pays cost (1, or loopEntry at the
// entry of a function with a tight loop):
//
//	global.get F; i32.const cost; i32.sub; global.set F
//	global.get F; i32.const 0; i32.le_s
//	if; call tick; global.set F; end
func (in *instrumenter) check(out []byte, cost int32) []byte {
	f := in.fuelIndex()
	out = append(out, 0x23)
	out = appendU32(out, f)
	out = append(out, 0x41)
	out = appendS32(out, cost)
	out = append(out, 0x6b, 0x24)
	out = appendU32(out, f)
	out = append(out, 0x23)
	out = appendU32(out, f)
	out = append(out, 0x41, 0, 0x4c, 0x04, 0x40, 0x10)
	out = appendU32(out, in.tickIndex())
	out = append(out, 0x24)
	out = appendU32(out, f)
	return append(out, 0x0b)
}

// maxCopies bounds the locals a counted loop copies at its wrapper's
// header: there are not many more registers than that to keep them in.
const maxCopies = 8

// minTightBody is the smallest loop body, in bytes, that gets the loop
// counter. A counted loop's header is ~55 bytes (and up to ~60 more of
// copies) where the fuel check is ~16: without a floor, a module of
// nothing but minimal loops (`loop; br_if 0; end`, 5 bytes with its
// condition) would grow 18 times where it grew 7 times before, and
// wazero would compile all of it. With it, no module grows more than it
// did. Real hot loops are longer: the echo's is 48 bytes.
const minTightBody = 24

// loopScan is what tightLoop learns of a loop body: the locals it reads,
// in the order of their first read, and which of them it also writes.
type loopScan struct {
	reads   []uint32
	written map[uint32]bool
}

func (s *loopScan) use(l uint32, read bool) {
	if s.written == nil {
		s.written = map[uint32]bool{} // only now: a loop that names no local needs none
	}
	if _, seen := s.written[l]; !seen && read {
		s.reads = append(s.reads, l)
	}
	s.written[l] = s.written[l] || !read
}

// tightLoop looks ahead through the body of the loop whose header r has
// just read, and says whether it is a tight loop: one with no nested loop
// and no call, of at least minTightBody bytes. Those are the loops where the cost of metering shows, and
// they get the loop counter (countedLoop); other loops keep the fuel
// check at their header, which costs nothing next to a call. It also
// returns the integer locals the loop reads and never writes (at most
// maxCopies), which countedLoop copies.
//
// Each byte is looked at once more at most: a look-ahead stops at the
// first nested loop, and the one started there covers that loop's body.
func (in *instrumenter) tightLoop(r *reader) ([]uint32, bool) {
	s := &loopScan{}
	in.ahead = s
	body := &reader{b: r.b, pos: r.pos}
	_, err := in.code(body, nil, true, false)
	in.ahead = nil
	if err != nil {
		return nil, false // errNotTight, or an error the rewrite will report
	}
	if body.pos-r.pos < minTightBody {
		return nil, false
	}
	var copies []uint32
	for _, l := range s.reads {
		if t := in.localType(l); !s.written[l] && (t == 0x7f || t == 0x7e) {
			if copies = append(copies, l); len(copies) == maxCopies {
				break
			}
		}
	}
	return copies, true
}

// localType is the first byte of the value type of local l of the
// function being rewritten.
func (in *instrumenter) localType(l uint32) byte {
	g := in.fnGroups
	i := sort.Search(len(g), func(i int) bool { return g[i].end > l })
	if i == len(g) {
		return 0
	}
	return g[i].t
}

// countedLoop appends, after `loop bt` (the wrapper's header, copied from
// the module), the rest of a tight loop's header, metered with the
// function's loop counter C: a wrapper loop of the same type as the loop,
// whose header takes a batch of fuel for C when C has run out, then the
// original loop, whose header spends one unit of C and goes back to the
// wrapper's header when none is left:
//
//	loop bt
//	  local.get C; i32.const 0; i32.le_s
//	  if
//	    global.get F; i32.const Batch; i32.sub; global.set F
//	    global.get F; i32.const 0; i32.le_s; if; call tick; global.set F; end
//	    i32.const Batch; local.set C
//	  end
//	  local.get L; i32.const 0; i32.add; local.set L   (each copied local L)
//	  loop bt
//	    local.get C; i32.const 1; i32.sub; local.tee C
//	    i32.const 0; i32.ge_s; if; else; br 2; end
//	    (i32.const 0; i32.lt_s; br_if 1 when the loop takes parameters)
//
// Why this shape (each measured on wazero's compiler, see RATIONALE.md):
// a local stays in a register where a global is loaded and stored on
// every iteration; the call to tick sits outside the original loop,
// since the compiler spills every value live across a call, even one
// never taken; copying the locals the loop only reads gives them a
// definition after that call, or the compiler reloads them from the
// stack at every use inside the loop; and the `if` compiles to a
// subtract, a compare and a branch not taken, where br_if to a loop
// header compiled to a compare, a setcc, a test and two jumps. A loop's
// parameters are on the stack at both headers, where br_if passes them
// on (an `if` cannot take them without a new type).
func (in *instrumenter) countedLoop(out, loop []byte, params bool, copies []uint32) []byte {
	c := in.fnLocals
	out = append(out, 0x20)
	out = appendU32(out, c)
	out = append(out, 0x41, 0, 0x4c, 0x04, 0x40) // i32.le_s; if
	out = in.check(out, Batch)
	out = append(out, 0x41)
	out = appendS32(out, Batch)
	out = append(out, 0x21)
	out = appendU32(out, c)
	out = append(out, 0x0b)
	for _, l := range copies {
		out = append(out, 0x20)
		out = appendU32(out, l)
		if in.localType(l) == 0x7e {
			out = append(out, 0x42, 0, 0x7c) // i64.const 0; i64.add
		} else {
			out = append(out, 0x41, 0, 0x6a) // i32.const 0; i32.add
		}
		out = append(out, 0x21)
		out = appendU32(out, l)
	}
	out = append(out, loop...) // the original
	out = append(out, 0x20)
	out = appendU32(out, c)
	out = append(out, 0x41, 1, 0x6b, 0x22)
	out = appendU32(out, c)
	if params {
		return append(out, 0x41, 0, 0x48, 0x0d, 1) // i32.lt_s; br_if 1
	}
	return append(out, 0x41, 0, 0x4e, 0x04, 0x40, 0x05, 0x0c, 2, 0x0b) // i32.ge_s; if; else; br 2; end
}

// elements rewrites the function indexes of every element segment form.
func (in *instrumenter) elements(r *reader) ([]byte, error) {
	var out []byte
	n := r.count("element segments", 2, MaxElemSegments)
	out = appendU32(out, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		out = appendU32(out, flags)
		var err error
		if flags > 7 {
			return nil, fmt.Errorf("segment %d: unknown flags %d", i, flags)
		}
		if flags&2 != 0 && flags&1 == 0 { // explicit table index
			out = appendU32(out, r.index("table", in.tables))
		}
		if flags&1 == 0 { // active: offset expression
			if out, err = in.code(r, out, false, true); err != nil {
				return nil, fmt.Errorf("segment %d offset: %w", i, err)
			}
		}
		if flags&3 != 0 { // elemkind (one byte) or reftype
			at := r.pos
			if flags&4 != 0 {
				r.valType(in.types)
			} else if k := r.byte(); r.err == nil && k != 0 {
				return nil, fmt.Errorf("segment %d: unknown element kind %#x", i, k)
			}
			out = append(out, r.b[at:r.pos]...)
		}
		count := r.count(fmt.Sprintf("items in segment %d", i), 1, MaxElemItems)
		if in.elemItems += uint64(count); in.elemItems > MaxElemItems {
			return nil, fmt.Errorf("segments up to %d hold %d items, more than the %d allowed", i, in.elemItems, MaxElemItems)
		}
		out = appendU32(out, count)
		for k := uint32(0); k < count && r.err == nil; k++ {
			if flags&4 == 0 {
				out = appendU32(out, in.shift(r.index("function", in.funcs)))
				continue
			}
			if out, err = in.code(r, out, false, true); err != nil {
				return nil, fmt.Errorf("segment %d item %d: %w", i, k, err)
			}
		}
	}
	return out, r.err
}

// names renumbers the function-indexed subsections of the name section.
// wazero refuses a malformed name section, and so does this, rather than
// drop it and accept a module wazero would not.
func (in *instrumenter) names(r *reader, name string) ([]byte, error) {
	out := appendName(nil, name)
	for !r.done() {
		id := r.byte()
		sub := &reader{b: r.bytes(int(r.u32()))}
		if r.err != nil {
			return nil, r.err
		}
		var body []byte
		switch id {
		case 1: // function names
			n := sub.count("function names", 2, MaxFunctions)
			in.nameCount += uint64(n)
			body = appendU32(body, n)
			for i := uint32(0); i < n && sub.err == nil; i++ {
				body = appendU32(body, in.shift(sub.u32()))
				body = appendName(body, sub.name())
			}
		case 2, 3: // local and label names, keyed by function
			n := sub.count("functions with names", 2, MaxFunctions)
			body = appendU32(body, n)
			for i := uint32(0); i < n && sub.err == nil; i++ {
				body = appendU32(body, in.shift(sub.u32()))
				m := sub.count("names in one function", 2, MaxNames)
				in.nameCount += uint64(m)
				body = appendU32(body, m)
				for k := uint32(0); k < m && sub.err == nil; k++ {
					body = appendU32(body, sub.u32())
					body = appendName(body, sub.name())
				}
			}
		default:
			body = sub.b
			sub.pos = len(sub.b)
		}
		if sub.err != nil {
			return nil, fmt.Errorf("subsection %d: %w", id, sub.err)
		}
		if !sub.done() {
			return nil, fmt.Errorf("subsection %d: %d trailing bytes", id, len(sub.b)-sub.pos)
		}
		if in.nameCount > MaxNames {
			return nil, fmt.Errorf("%d names, more than the %d allowed", in.nameCount, MaxNames)
		}
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	return out, r.err
}
