;; transport_loop.wat - a hostile transport plugin: a data event starting with "L" never ends.
;;
;; What it does: bytes starting with "L" make it loop forever; any other
;; bytes are written back and consumed.
;;
;; What the host must answer:
;;   "L" on a connection -> the event is stopped at limits.timeout, the
;;                          instance replaced, its connections closed
;;                          (reason counted); other instances keep serving
;;   "x" on a connection -> "x" written back
(module
  (import "pycomms:host/v1" "conn_write" (func $write (param i32 i32 i32) (result i32)))
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
    (if (i32.ne (local.get $ev) (i32.const 3)) (then (return (i32.const 0))))
    (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 76))
      (then (loop $forever (br $forever))))
    (drop (call $write (local.get $id) (local.get $ptr) (local.get $la)))
    (local.get $la))
)
