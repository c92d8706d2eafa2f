;; transport_callh.wat - a transport plugin that delivers requests and writes back their replies with headers.
;;
;; What it does: each whole line that arrives on a connection (up to its
;; first newline; one line per data event, the rest stays with the host)
;; is delivered into the host as a request to the subject "headers.r" with
;; the line as payload and no headers. Each reply event is written on the
;; last connection that opened as one frame: status, reply length and
;; headers length (3 x u32, little-endian), then the reply bytes and the
;; reply's headers (a CBOR map) as the host laid them out (len_a, len_b).
;;
;; What the host must answer, with headers.wat serving "headers":
;;   line "R"          -> status 0, reply "-", headers CBOR {"x-rep": "yes"}
;;   line "Oheaders.r" -> status 0, reply "-yes", no headers (len_b 0)
;;   line "Cnone.x"    -> status no_handler, the error text, no headers
(module
  (import "pycomms:host/v1" "conn_write" (func $write (param i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "deliver" (func $deliver (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 32) "headers.r") ;; 9 bytes: the subject of every request
  (global $base i32 (i32.const 65536))
  (global $last (mut i32) (i32.const 0))  ;; the connection opened last, 0: none
  (global $corr (mut i32) (i32.const 0))  ;; the last correlation id used

  (func (export "pycomms_abi_version") (result i32) (i32.const 1))

  ;; one buffer at $base, grown to hold 2*size + 9 (room for the request
  ;; built after the event's bytes)
  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.wrap_i64 (i64.shr_u
      (i64.add (i64.extend_i32_u (global.get $base))
               (i64.add (i64.shl (i64.extend_i32_u (local.get $size)) (i64.const 1)) (i64.const 65544)))
      (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
        (then (return (i32.const 0))))))
    (global.get $base))

  (func (export "pycomms_transport_event")
        (param $ev i32) (param $id i32) (param $arg i32) (param $ptr i32)
        (param $la i32) (param $lb i32) (param $lc i32) (result i32)
    (local $n i32) (local $at i32)
    ;; dialed (1) or accepted (2): the connection replies go out on
    (if (i32.le_u (i32.sub (local.get $ev) (i32.const 1)) (i32.const 1))
      (then (global.set $last (local.get $id)) (return (i32.const 0))))
    ;; reply (6): the frame header at 16, then reply and headers
    (if (i32.eq (local.get $ev) (i32.const 6))
      (then
        (if (i32.eqz (global.get $last)) (then (return (i32.const 0))))
        (i32.store (i32.const 16) (local.get $arg))
        (i32.store (i32.const 20) (local.get $la))
        (i32.store (i32.const 24) (local.get $lb))
        (drop (call $write (global.get $last) (i32.const 16) (i32.const 12)))
        (if (i32.gt_u (i32.add (local.get $la) (local.get $lb)) (i32.const 0))
          (then (drop (call $write (global.get $last) (local.get $ptr) (i32.add (local.get $la) (local.get $lb))))))
        (return (i32.const 0))))
    (if (i32.ne (local.get $ev) (i32.const 3)) (then (return (i32.const 0))))
    ;; data (3): find the first newline
    (block $found
      (loop $scan
        (if (i32.ge_u (local.get $n) (local.get $la)) (then (return (i32.const 0))))
        (br_if $found (i32.eq (i32.load8_u (i32.add (local.get $ptr) (local.get $n))) (i32.const 10)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $scan)))
    ;; the request after the data: subject "headers.r", then the line
    (local.set $at (i32.add (local.get $ptr) (local.get $la)))
    (memory.copy (local.get $at) (i32.const 32) (i32.const 9))
    (memory.copy (i32.add (local.get $at) (i32.const 9)) (local.get $ptr) (local.get $n))
    (global.set $corr (i32.add (global.get $corr) (i32.const 1)))
    (drop (call $deliver (i32.const 1) (global.get $corr) (local.get $at) (i32.const 9) (local.get $n) (i32.const 0)))
    (i32.add (local.get $n) (i32.const 1)))
)
