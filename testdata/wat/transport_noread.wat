;; transport_noread.wat - a hostile transport plugin: never consumes what arrives.
;;
;; What it does: every data event returns 0 (nothing consumed).
;;
;; What the host must answer:
;;   a peer that keeps writing -> the host keeps at most limits.read_buffer
;;   bytes for the connection, then closes it (reason "read buffer full",
;;   too_large); the peer's writes meanwhile back up in TCP
(module
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
    (i32.const 0))
)
