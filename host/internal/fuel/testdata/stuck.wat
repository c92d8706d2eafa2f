;; stuck.wat: fixture for the fuel instrumenter: guests that never return
;; on their own, each in a different shape, so that a test can check the
;; host stops every one. n bounds the work (0: 2^32 rounds, for ever in
;; practice), so that the same functions also show how often each shape
;; ticks. The loops that must be tight (no call, no nested loop) are
;; padded with arithmetic on $acc to the rewriter's minimum size for the
;; loop counter (minTightBody, 24 bytes).
(module
  (global $sink (mut i32) (i32.const 0))
  ;; spin(n): one tight loop (no call, no nested loop): the loop counter.
  (func (export "spin") (param $n i32)
    (local $acc i32)
    (loop $l
      (local.set $acc (i32.xor (i32.add (local.get $acc) (local.get $n)) (i32.const 0x5bd1e995)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n))))
  ;; nested(n): a tight inner loop of 100 iterations inside an outer loop
  ;; run n times; the branch to the outer loop's label crosses the
  ;; wrapper the rewrite puts around the inner loop.
  (func (export "nested") (param $n i32)
    (local $i i32) (local $acc i32)
    (loop $outer
      (local.set $i (i32.const 100))
      (loop $inner
        (local.set $acc (i32.xor (i32.add (local.get $acc) (local.get $n)) (i32.const 0x5bd1e995)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br_if $inner (local.get $i))
        (br_if $outer (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))
  ;; calling(n): a loop that calls a function on every iteration: the
  ;; fuel check at its header.
  (func $leaf (global.set $sink (i32.add (global.get $sink) (i32.const 1))))
  (func (export "calling") (param $n i32)
    (loop $l
      (call $leaf)
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n))))
  ;; tree(d): a recursion tree with no loop at all, 2^d calls: only the
  ;; check at function entry meters it.
  (func $tree (export "tree") (param $d i32)
    (if (local.get $d)
      (then
        (call $tree (i32.sub (local.get $d) (i32.const 1)))
        (call $tree (i32.sub (local.get $d) (i32.const 1))))))
  ;; short(d): a recursion tree whose every call first runs a tight loop
  ;; of 200 iterations, fewer than a batch of the loop counter.
  (func $short (export "short") (param $d i32)
    (local $i i32) (local $acc i32) (local $n i32)
    (local.set $i (i32.const 200))
    (loop $l
      (local.set $acc (i32.xor (i32.add (local.get $acc) (local.get $n)) (i32.const 0x5bd1e995)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $l (local.get $i)))
    (if (local.get $d)
      (then
        (call $short (i32.sub (local.get $d) (i32.const 1)))
        (call $short (i32.sub (local.get $d) (i32.const 1))))))
  ;; carried(n): a tight loop that takes and returns a parameter
  ;; (multi-value) and counts it down: the loop counter with br_if.
  (func (export "carried") (param $n i32) (result i32)
    (local $acc i32)
    (local.get $n)
    (loop $l (param i32) (result i32)
      (local.set $acc (i32.xor (i32.add (local.get $acc) (local.get $n)) (i32.const 0x5bd1e995)))
      (local.set $acc (i32.xor (i32.add (local.get $acc) (local.get $n)) (i32.const 0x5bd1e995)))
      (i32.sub (i32.const 1))
      (local.tee $n)
      (br_if $l (local.get $n))))
)
