;; transport_baddial.wat - a hostile transport plugin: dials outside its dial list.
;;
;; What it does: on an accepted connection it asks conn_open for dial
;; index 7 and index -1, and writes "INV\n" on the connection when both
;; were refused with invalid (-2), "BAD\n" otherwise.
;;
;; What the host must answer:
;;   conn_open with an index outside the dial list -> -invalid, nothing
;;   dialled, counted as a plugin error; the instance keeps serving
(module
  (import "pycomms:host/v1" "conn_write" (func $write (param i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "conn_open" (func $open (param i32) (result i32)))
  (data (i32.const 16) "INV\n")
  (data (i32.const 32) "BAD\n")
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
    (if (i32.ne (local.get $ev) (i32.const 2)) (then (return (i32.const 0))))
    (if (i32.and (i32.eq (call $open (i32.const 7)) (i32.const -2))
                 (i32.eq (call $open (i32.const -1)) (i32.const -2)))
      (then (drop (call $write (local.get $id) (i32.const 16) (i32.const 4))))
      (else (drop (call $write (local.get $id) (i32.const 32) (i32.const 4)))))
    (i32.const 0))
)
