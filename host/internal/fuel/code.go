package fuel

import (
	"errors"
	"fmt"
)

// errNotTight ends a look-ahead (see tightLoop) at a nested loop or a call.
var errNotTight = errors.New("not a tight loop")

// code copies instructions from r to out up to and including the `end` that
// closes the expression, renumbering function references. In function
// bodies (checks) it meters every loop: a tight loop (see tightLoop) with
// the function's loop counter inside a wrapper loop (see countedLoop), so
// every branch label that crosses a wrapper is renumbered; any other loop
// with the fuel check at its header.
//
// While in.ahead is set, code is looking ahead through a loop body for
// tightLoop: it records the locals and stops at a nested loop or a call.
func (in *instrumenter) code(r *reader, out []byte, checks, constExpr bool) ([]byte, error) {
	depth := 0
	// wrapped[i] is the number of wrapper loops among the first i open
	// blocks (outermost first): a branch of depth l crosses
	// wrapped[depth]-wrapped[depth-l] of them.
	wrapped := []uint32{0}
	open := func(wrap bool) {
		depth++
		n := wrapped[len(wrapped)-1]
		if wrap {
			n++
		}
		wrapped = append(wrapped, n)
	}
	// label renumbers a branch target. One past the function's own
	// labels would name a wrapper in the rewritten body, so it is refused
	// here, as wazero refuses it in the original.
	label := func(l uint32) uint32 {
		if in.ahead != nil {
			return l // looking ahead from inside the loop: outer labels are unknown
		}
		if r.err == nil && int64(l) > int64(depth) {
			r.err = fmt.Errorf("label %d out of range (%d in scope) at offset %d", l, depth+1, r.pos)
		}
		if r.err != nil {
			return 0
		}
		return l + wrapped[depth] - wrapped[depth-int(l)]
	}
	for {
		if r.done() {
			return nil, fmt.Errorf("unexpected end of code (unclosed block)")
		}
		start := r.pos
		op := r.byte()
		switch {
		case op == 0x0b: // end
			out = append(out, op)
			if depth == 0 {
				return out, r.err
			}
			if wrapped[depth] != wrapped[depth-1] {
				out = append(out, op) // the wrapper's end
			}
			depth--
			wrapped = wrapped[:depth+1]
			continue
		case op == 0x02 || op == 0x04 || op == 0x06: // block, if, try
			r.blockType(in.types)
			open(false)
		case op == 0x03: // loop
			bt := r.blockType(in.types)
			if r.err != nil {
				return nil, r.err
			}
			if in.ahead != nil {
				return nil, errNotTight
			}
			if !checks {
				open(false)
				break
			}
			out = append(out, r.b[start:r.pos]...)
			if copies, ok := in.tightLoop(r); ok {
				in.fnLoops = true
				out = in.countedLoop(out, r.b[start:r.pos], bt >= 0 && in.params[bt] > 0, copies)
				open(true)
				continue
			}
			out = in.check(out, 1)
			open(false)
			continue
		case op == 0x1f: // try_table
			r.blockType(in.types)
			out = append(out, r.b[start:r.pos]...)
			n := r.u32()
			out = appendU32(out, n)
			for i := uint32(0); i < n && r.err == nil; i++ {
				kind := r.byte()
				out = append(out, kind)
				if kind == 0 || kind == 1 {
					out = appendU32(out, r.u32()) // tag
				}
				out = appendU32(out, label(r.u32())) // outside the try_table
			}
			if r.err != nil {
				return nil, r.err
			}
			open(false)
			continue
		case op == 0x0c || op == 0x0d: // br, br_if
			l := label(r.u32())
			if r.err != nil {
				return nil, r.err
			}
			out = append(out, op)
			out = appendU32(out, l)
			continue
		case op == 0x0e: // br_table
			n := r.u32()
			out = append(out, op)
			out = appendU32(out, n)
			for i := uint32(0); i <= n && r.err == nil; i++ {
				out = appendU32(out, label(r.u32()))
			}
			if r.err != nil {
				return nil, r.err
			}
			continue
		case op == 0x10 || op == 0x12 || op == 0xd2: // call, return_call, ref.func
			idx := r.index("function", in.funcs)
			if r.err != nil {
				return nil, r.err
			}
			if op != 0xd2 && in.ahead != nil {
				return nil, errNotTight
			}
			out = append(out, op)
			out = appendU32(out, in.shift(idx))
			continue
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			r.index("type", in.types)
			r.u32()
			if r.err != nil {
				return nil, r.err
			}
			if in.ahead != nil {
				return nil, errNotTight
			}
		case op == 0x1c: // select with types
			n := r.count("types in select", 1, 1)
			for i := uint32(0); i < n && r.err == nil; i++ {
				r.valType(in.types)
			}
		case op == 0x23 || op == 0x24: // global.get, global.set
			r.index("global", in.globalCount())
		case op == 0x18: // delegate closes a try like end does
			// Legacy exception handling, which wazero refuses: the label
			// is copied as it is.
			r.u32()
			if depth > 0 {
				depth--
				wrapped = wrapped[:depth+1]
			}
		case op >= 0x20 && op <= 0x22: // local.get, local.set, local.tee
			// Checked here, not left to wazero: the loop counter is the
			// local one past the function's own.
			n := in.fnLocals
			if !checks {
				n = 0 // no locals in a constant expression
			}
			l := r.index("local", n)
			if in.ahead != nil && r.err == nil {
				in.ahead.use(l, op == 0x20)
			}
		case op == 0x25 || op == 0x26 ||
			op == 0x07 || op == 0x08 || op == 0x09: // tables, catch, throw, rethrow
			r.u32()
		case op >= 0x28 && op <= 0x3e: // loads and stores
			r.memarg()
		case op == 0x40: // memory.grow
			mem := r.u32()
			if r.err != nil {
				return nil, r.err
			}
			// Only where it is valid as written: in a function body, on
			// memory 0 of a module that has one, encoded as the single
			// byte 0 (a longer encoding is malformed). Anything else stays
			// as it is, for wazero to refuse.
			if checks && mem == 0 && r.pos-start == 2 && in.memories > 0 {
				if in.ahead != nil {
					return nil, errNotTight // it becomes a call
				}
				out = append(out, 0x10)
				out = appendU32(out, in.growIndex())
				continue
			}
		case op == 0x3f: // memory.size
			r.u32()
		case op == 0x41 || op == 0x42: // i32.const, i64.const
			r.leb()
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op == 0xd0: // ref.null
			r.heapType(in.types)
		case op == 0xfc:
			if err := r.prefixFC(); err != nil {
				return nil, err
			}
		case op == 0xfd:
			if err := r.prefixFD(); err != nil {
				return nil, err
			}
		case op == 0xfe:
			if err := r.prefixFE(); err != nil {
				return nil, err
			}
		case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0a || op == 0x0f ||
			op == 0x19 || op == 0x1a || op == 0x1b || (op >= 0x45 && op <= 0xc4) || op == 0xd1:
			// no immediates
		default:
			return nil, fmt.Errorf("unknown opcode %#02x at offset %d", op, start)
		}
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, r.b[start:r.pos]...)
	}
}

func (r *reader) prefixFC() error {
	sub := r.u32()
	switch {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init data, mem
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	case sub == 10, sub == 12, sub == 14: // memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	default:
		return fmt.Errorf("unknown opcode 0xfc %d", sub)
	}
	return r.err
}

func (r *reader) prefixFD() error {
	sub := r.u32()
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // v128 loads and stores
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract/replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load/store lane
		r.memarg()
		r.byte()
	case sub <= 0x113: // every other SIMD and relaxed-SIMD op has no immediate
	default:
		return fmt.Errorf("unknown opcode 0xfd %d", sub)
	}
	return r.err
}

func (r *reader) prefixFE() error {
	sub := r.u32()
	switch {
	case sub == 3: // atomic.fence
		r.byte()
	case sub <= 0x4e:
		r.memarg()
	default:
		return fmt.Errorf("unknown opcode 0xfe %d", sub)
	}
	return r.err
}
