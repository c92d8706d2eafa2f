;; transport_garbage.wat - a hostile transport plugin: answers with garbage.
;;
;; What it does: a data event returns 1000 more bytes consumed than it was
;; given; a message event calls conn_write with a pointer far outside its
;; memory. Other events succeed.
;;
;; What the host must answer:
;;   data    -> ABI violation: the instance is replaced and its connections
;;              closed (reason "instance failed", counted)
;;   message -> ABI violation: the request fails with trap, instance replaced
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
    (if (i32.eq (local.get $ev) (i32.const 3))
      (then (return (i32.add (local.get $la) (i32.const 1000)))))
    (if (i32.eq (local.get $ev) (i32.const 5))
      (then (return (call $write (i32.const 1) (i32.const -16) (i32.const 100)))))
    (i32.const 0))
)
