;; transport_replyh.wat - a transport plugin that answers requests with headers (respond_h).
;;
;; What it does: it keeps no state but whether a connection is open (the
;; host routes requests only to an instance that owns one). A request
;; routed out through it is answered at once, during its message event:
;; with its own payload and the header served-by = wat; a payload "fail"
;; with status handler_error, text "no" and the same header (which the host
;; drops: an error carries no headers); a payload "bad" first with the
;; header "Bad" (upper case, which the host refuses with -invalid, leaving
;; the request unanswered), then with plain respond and the text "refused"
;; when that was -invalid, "accepted" otherwise.
;;
;; What the host must answer:
;;   request "hi"   -> reply "hi", headers {served-by: wat}
;;   request "fail" -> handler_error "transport ...: no", no headers
;;   request "bad"  -> reply "refused", no headers
(module
  (import "pycomms:host/v1" "respond" (func $respond (param i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "respond_h" (func $respond_h (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "\a1\69served-by\63wat") ;; CBOR {"served-by": "wat"}, 15 bytes
  (data (i32.const 48) "\a1\63Bad\61x")         ;; CBOR {"Bad": "x"}, 7 bytes
  (data (i32.const 64) "refused")
  (data (i32.const 80) "accepted")
  (data (i32.const 96) "no")
  (global $base i32 (i32.const 65536))
  (global $open (mut i32) (i32.const 0))
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
    (local $p i32)
    ;; dialed (1) or accepted (2): open; closed (4): not
    (if (i32.le_u (i32.sub (local.get $ev) (i32.const 1)) (i32.const 1))
      (then (global.set $open (i32.const 1)) (return (i32.const 0))))
    (if (i32.eq (local.get $ev) (i32.const 4))
      (then (global.set $open (i32.const 0)) (return (i32.const 0))))
    ;; anything but a request (message 5 with a correlation id): nothing to do
    (if (i32.or (i32.ne (local.get $ev) (i32.const 5)) (i32.eqz (local.get $id)))
      (then (return (i32.const 0))))
    (if (i32.eqz (global.get $open)) (then (return (i32.const -11)))) ;; -unreachable
    (local.set $p (i32.add (local.get $ptr) (local.get $la)))
    ;; "fail": handler_error (7) with headers the host drops
    (if (i32.and (i32.eq (local.get $lb) (i32.const 4)) (i32.eq (i32.load (local.get $p)) (i32.const 0x6c696166)))
      (then
        (drop (call $respond_h (local.get $id) (i32.const 7) (i32.const 96) (i32.const 2) (i32.const 16) (i32.const 15)))
        (return (i32.const 0))))
    ;; "bad": headers the host refuses, then a plain answer saying so
    (if (i32.and (i32.eq (local.get $lb) (i32.const 3))
          (i32.and (i32.eq (i32.load16_u (local.get $p)) (i32.const 0x6162))
                   (i32.eq (i32.load8_u (i32.add (local.get $p) (i32.const 2))) (i32.const 0x64))))
      (then
        (if (i32.eq (call $respond_h (local.get $id) (i32.const 0) (local.get $p) (local.get $lb) (i32.const 48) (i32.const 7)) (i32.const -2))
          (then (drop (call $respond (local.get $id) (i32.const 0) (i32.const 64) (i32.const 7))))
          (else (drop (call $respond (local.get $id) (i32.const 0) (i32.const 80) (i32.const 8)))))
        (return (i32.const 0))))
    ;; anything else: the payload back, with served-by
    (drop (call $respond_h (local.get $id) (i32.const 0) (local.get $p) (local.get $lb) (i32.const 16) (i32.const 15)))
    (i32.const 0))
)
