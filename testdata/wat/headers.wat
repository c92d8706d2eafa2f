;; headers.wat - a handler that sends and replies with headers (publish_h,
;; send_h, call_h, reply_h, result_header, result_headers), for the tests of
;; SPEC.md section 10.
;;
;; What it does: the payload's first byte picks an operation, the rest of
;; the payload is the TARGET subject or topic. Outgoing messages carry the
;; payload "R" and the headers {"x-req": "1"} unless said otherwise.
;;   R         reply_h: reply with the value of the header x-req of this
;;             message ("-" when it has none), with reply headers
;;             {"x-rep": "yes"}
;;   C TARGET  call_h TARGET; reply with the call's reply followed by the
;;             reply's header x-rep (result_header)
;;   O TARGET  the same with the old import call (no headers)
;;   A TARGET  call_h TARGET; reply with result_headers (a CBOR map)
;;   S TARGET  send_h TARGET; reply with its return code (4 bytes, LE)
;;   P TARGET  publish_h TARGET; reply with its return code (4 bytes, LE)
;;   B TARGET  call_h with headers that are not CBOR (0xff); reply with
;;             its return code
;;   U TARGET  call_h with an upper-case header key {"X": "1"}; reply with
;;             its return code
;;   H         reply_h with headers 0xff; reply (with reply) its return code
;;   X TARGET  call_h with headers outside linear memory
;; A failed call_h or call replies with the error text and returns the
;; call's status.
;;
;; What the host must answer (grants: [call, send, publish]):
;;   "Cheaders.r" routed to this plugin          -> "1yes"
;;   "Oheaders.r"                                -> "-yes"
;;   "Aheaders.r"                                -> CBOR {"x-rep": "yes"}
;;   "S..." / "P..." to a service / topic        -> 0, and the message
;;                                                  carries {"x-req": "1"}
;;   "B..." / "U..." / "H"                       -> -2 (invalid), the
;;                                                  instance is kept
;;   "X..."                                      -> status trap, the
;;                                                  instance is replaced
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (import "pycomms:host/v1" "reply_h" (func $reply_h (param i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "header" (func $header (param i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "call_h" (func $call_h (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "send_h" (func $send_h (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "publish_h" (func $publish_h (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "result" (func $result (param i32 i32) (result i32)))
  (import "pycomms:host/v1" "result_header" (func $result_header (param i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "result_headers" (func $result_headers (param i32 i32) (result i32)))
  (memory (export "memory") 2)

  (data (i32.const 0) "x-req")
  (data (i32.const 8) "x-rep")
  (data (i32.const 16) "\a1\65x-req\61\31")      ;; {"x-req": "1"}, 9 bytes
  (data (i32.const 32) "\a1\65x-rep\63yes")      ;; {"x-rep": "yes"}, 11 bytes
  (data (i32.const 48) "\ff")                    ;; not CBOR
  (data (i32.const 56) "\a1\61X\61\31")          ;; {"X": "1"}, 5 bytes
  (data (i32.const 64) "R")
  (data (i32.const 68) "-")
  ;; 128: a return code; 256: a header value; 512..65535: a call's result.

  (func (export "pycomms_abi_version") (result i32) (i32.const 1))

  ;; Messages go to the second page; the tests send small ones.
  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))

  ;; code replies with r as 4 little-endian bytes.
  (func $code (param $r i32) (result i32)
    (i32.store (i32.const 128) (local.get $r))
    (drop (call $reply (i32.const 128) (i32.const 4)))
    (i32.const 0))

  ;; failed replies with the error text of the last call and returns its
  ;; status.
  (func $failed (param $r i32) (result i32)
    (local $n i32)
    (local.set $n (call $result (i32.const 0) (i32.const 0)))
    (if (i32.gt_u (local.get $n) (i32.const 65024)) (then (local.set $n (i32.const 65024))))
    (drop (call $result (i32.const 512) (local.get $n)))
    (drop (call $reply (i32.const 512) (local.get $n)))
    (i32.sub (i32.const 0) (local.get $r)))

  (func (export "pycomms_handle")
        (param $kind i32) (param $ptr i32) (param $slen i32) (param $plen i32) (param $hlen i32)
        (result i32)
    (local $op i32) (local $t i32) (local $tl i32) (local $r i32) (local $n i32)
    (if (i32.eqz (local.get $plen)) (then (return (i32.const 2))))
    (local.set $op (i32.load8_u (i32.add (local.get $ptr) (local.get $slen))))
    (local.set $t (i32.add (i32.add (local.get $ptr) (local.get $slen)) (i32.const 1)))
    (local.set $tl (i32.sub (local.get $plen) (i32.const 1)))

    ;; R: reply with header x-req, with reply headers
    (if (i32.eq (local.get $op) (i32.const 0x52))
      (then
        (local.set $n (call $header (i32.const 0) (i32.const 5) (i32.const 256) (i32.const 256)))
        (if (i32.lt_s (local.get $n) (i32.const 0))
          (then (local.set $r (call $reply_h (i32.const 68) (i32.const 1) (i32.const 32) (i32.const 11))))
          (else (local.set $r (call $reply_h (i32.const 256) (local.get $n) (i32.const 32) (i32.const 11)))))
        (if (i32.lt_s (local.get $r) (i32.const 0)) (then (return (i32.sub (i32.const 0) (local.get $r)))))
        (return (i32.const 0))))

    ;; C, O: call (with or without headers), reply body + x-rep
    (if (i32.or (i32.eq (local.get $op) (i32.const 0x43)) (i32.eq (local.get $op) (i32.const 0x4f)))
      (then
        (if (i32.eq (local.get $op) (i32.const 0x43))
          (then (local.set $r (call $call_h (local.get $t) (local.get $tl) (i32.const 64) (i32.const 1)
                                            (i32.const 16) (i32.const 9) (i32.const 0))))
          (else (local.set $r (call $call (local.get $t) (local.get $tl) (i32.const 64) (i32.const 1) (i32.const 0)))))
        (if (i32.lt_s (local.get $r) (i32.const 0)) (then (return (call $failed (local.get $r)))))
        (if (i32.gt_u (local.get $r) (i32.const 1024)) (then (return (i32.const 3))))
        (drop (call $result (i32.const 512) (local.get $r)))
        (local.set $n (call $result_header (i32.const 8) (i32.const 5)
                                           (i32.add (i32.const 512) (local.get $r)) (i32.const 1024)))
        (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
        (drop (call $reply (i32.const 512) (i32.add (local.get $r) (local.get $n))))
        (return (i32.const 0))))

    ;; A: call_h, reply with every reply header as CBOR
    (if (i32.eq (local.get $op) (i32.const 0x41))
      (then
        (local.set $r (call $call_h (local.get $t) (local.get $tl) (i32.const 64) (i32.const 1)
                                    (i32.const 16) (i32.const 9) (i32.const 0)))
        (if (i32.lt_s (local.get $r) (i32.const 0)) (then (return (call $failed (local.get $r)))))
        (local.set $n (call $result_headers (i32.const 512) (i32.const 1024)))
        (if (i32.gt_u (local.get $n) (i32.const 1024)) (then (return (i32.const 3))))
        (drop (call $reply (i32.const 512) (local.get $n)))
        (return (i32.const 0))))

    (if (i32.eq (local.get $op) (i32.const 0x53)) ;; S
      (then (return (call $code (call $send_h (local.get $t) (local.get $tl) (i32.const 64) (i32.const 1)
                                              (i32.const 16) (i32.const 9))))))
    (if (i32.eq (local.get $op) (i32.const 0x50)) ;; P
      (then (return (call $code (call $publish_h (local.get $t) (local.get $tl) (i32.const 64) (i32.const 1)
                                                 (i32.const 16) (i32.const 9))))))
    (if (i32.eq (local.get $op) (i32.const 0x42)) ;; B
      (then (return (call $code (call $call_h (local.get $t) (local.get $tl) (i32.const 64) (i32.const 1)
                                              (i32.const 48) (i32.const 1) (i32.const 0))))))
    (if (i32.eq (local.get $op) (i32.const 0x55)) ;; U
      (then (return (call $code (call $call_h (local.get $t) (local.get $tl) (i32.const 64) (i32.const 1)
                                              (i32.const 56) (i32.const 5) (i32.const 0))))))
    (if (i32.eq (local.get $op) (i32.const 0x48)) ;; H
      (then (return (call $code (call $reply_h (i32.const 64) (i32.const 1) (i32.const 48) (i32.const 1))))))
    (if (i32.eq (local.get $op) (i32.const 0x58)) ;; X
      (then (return (call $code (call $call_h (local.get $t) (local.get $tl) (i32.const 64) (i32.const 1)
                                              (i32.const 0xfffffff0) (i32.const 64) (i32.const 0))))))
    (i32.const 2))
)
