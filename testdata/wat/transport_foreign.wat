;; transport_foreign.wat - a hostile transport plugin: writes on a connection it does not own.
;;
;; What it does: on bytes from connection N it writes "stolen" on
;; connection N+1 (and on N-1), then tells its own peer what the host
;; answered: "NF\n" when both writes were refused with not_found (-10),
;; "OK\n" when either went through.
;;
;; What the host must answer:
;;   conn_write on a connection of another instance, or on none -> -not_found,
;;   nothing written there, the attempt counted as a plugin error
(module
  (import "pycomms:host/v1" "conn_write" (func $write (param i32 i32 i32) (result i32)))
  (data (i32.const 16) "stolen")
  (data (i32.const 32) "NF\n")
  (data (i32.const 48) "OK\n")
  (memory (export "memory") 1)
  (global $base i32 (i32.const 65536))
  (func (export "pycomms_abi_version") (result i32) (i32.const 1))
  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.wrap_i64 (i64.shr_u
      (i64.add (i64.extend_i32_u (global.get $base))
               (i64.add (i64.extend_i32_u (local.get $size)) (i64.const 65535)))
      (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
        (then (return (i32.const 0))))))
    (global.get $base))
  (func (export "pycomms_transport_event")
        (param $ev i32) (param $id i32) (param $arg i32) (param $ptr i32)
        (param $la i32) (param $lb i32) (param $lc i32) (result i32)
    (local $a i32) (local $b i32)
    (if (i32.ne (local.get $ev) (i32.const 3)) (then (return (i32.const 0))))
    (local.set $a (call $write (i32.add (local.get $id) (i32.const 1)) (i32.const 16) (i32.const 6)))
    (local.set $b (call $write (i32.sub (local.get $id) (i32.const 1)) (i32.const 16) (i32.const 6)))
    (if (i32.and (i32.eq (local.get $a) (i32.const -10)) (i32.eq (local.get $b) (i32.const -10)))
      (then (drop (call $write (local.get $id) (i32.const 32) (i32.const 3))))
      (else (drop (call $write (local.get $id) (i32.const 48) (i32.const 3)))))
    (local.get $la))
)
