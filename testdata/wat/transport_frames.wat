;; transport_frames.wat - a transport plugin that carries whole messages, headers included.
;;
;; What it does: a message routed out through it is written on the last
;; connection that opened as one frame: subject, payload and headers
;; lengths (3 x u32, little-endian), then the bytes as the host laid them
;; out. Every complete frame that arrives is delivered into the host as an
;; event with its subject, payload and headers; a partial frame stays with
;; the host.
;;
;; What the host must answer:
;;   an event routed out          -> one frame on the wire, headers carrying
;;                                   pycomms-origin (the host's node id)
;;   that frame coming back       -> dropped by the host: its own message
;;   a frame without that origin  -> published to the host's subscribers
(module
  (import "pycomms:host/v1" "conn_write" (func $write (param i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "deliver" (func $deliver (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $base i32 (i32.const 65536))
  (global $last (mut i32) (i32.const 0))
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
    (local $used i32) (local $at i32) (local $sl i32) (local $pl i32) (local $hl i32) (local $n i32)
    ;; dialed (1) or accepted (2): the connection messages go out on
    (if (i32.le_u (i32.sub (local.get $ev) (i32.const 1)) (i32.const 1))
      (then (global.set $last (local.get $id)) (return (i32.const 0))))
    ;; message (5): the frame header at 16, then the region
    (if (i32.eq (local.get $ev) (i32.const 5))
      (then
        (if (i32.eqz (global.get $last)) (then (return (i32.const -11))))
        (i32.store (i32.const 16) (local.get $la))
        (i32.store (i32.const 20) (local.get $lb))
        (i32.store (i32.const 24) (local.get $lc))
        (drop (call $write (global.get $last) (i32.const 16) (i32.const 12)))
        (drop (call $write (global.get $last) (local.get $ptr)
          (i32.add (local.get $la) (i32.add (local.get $lb) (local.get $lc)))))
        (return (i32.const 0))))
    (if (i32.ne (local.get $ev) (i32.const 3)) (then (return (i32.const 0))))
    ;; data (3): deliver every complete frame
    (block $done
      (loop $frame
        (br_if $done (i32.lt_u (i32.sub (local.get $la) (local.get $used)) (i32.const 12)))
        (local.set $at (i32.add (local.get $ptr) (local.get $used)))
        (local.set $sl (i32.load (local.get $at)))
        (local.set $pl (i32.load (i32.add (local.get $at) (i32.const 4))))
        (local.set $hl (i32.load (i32.add (local.get $at) (i32.const 8))))
        (local.set $n (i32.add (i32.const 12) (i32.add (local.get $sl) (i32.add (local.get $pl) (local.get $hl)))))
        (br_if $done (i32.lt_u (i32.sub (local.get $la) (local.get $used)) (local.get $n)))
        (drop (call $deliver (i32.const 3) (i32.const 0) (i32.add (local.get $at) (i32.const 12))
          (local.get $sl) (local.get $pl) (local.get $hl)))
        (local.set $used (i32.add (local.get $used) (local.get $n)))
        (br $frame)))
    (local.get $used))
)
