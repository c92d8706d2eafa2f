;; count.wat: fixture for the fuel instrumenter. count(n) runs a loop n
;; times and returns n; fib(n) recurses without any loop; call_indirect,
;; ref.func, an element segment and a start function check that every
;; function reference is renumbered.
(module
  (type $t (func (param i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $count $fib)
  (global $started (mut i32) (i32.const 0))
  (func $start (global.set $started (i32.const 1)))
  (start $start)
  (func $count (export "count") (param $n i32) (result i32)
    (local $i i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $i))
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "indirect") (param $which i32) (param $n i32) (result i32)
    (call_indirect (type $t) (local.get $n) (local.get $which)))
  (func (export "started") (result i32) (global.get $started))
)
