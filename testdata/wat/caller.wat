;; caller.wat - a handler that calls another service, for call-chain tests.
;;
;; What it does: treats its payload as a subject and calls it:
;; call(subject = payload, data = empty, timeout_ms = 0, i.e. the rest of this
;; message's own budget), then copies the result with `result` and replies
;; with those bytes. When the call succeeded it returns 0 (ok); when it
;; failed it replies with the error text and returns the negated call
;; result as its own status (timeout, no_handler, denied, ...).
;;
;; What the host must answer (the plugin needs grants: [call]):
;;   payload "svc.echo" (served by echo.wat)  -> status ok, reply "" (echo of
;;                                               the empty data)
;;   payload "nobody.home"                    -> status no_handler, the reply
;;                                               is the host's error text
;;   without the call grant                   -> status denied (1)
;;   payload = a subject this plugin serves   -> the chain recurses until the
;;                                               hop limit: status invalid
;;                                               ("call chain too deep")
;;   payload = a subject served by loop.wat   -> status timeout within this
;;                                               message's own deadline
(module
  (import "pycomms:host/v1" "call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "result" (func $result (param i32 i32) (result i32)))
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $base i32 (i32.const 65536))

  (func (export "pycomms_abi_version") (result i32) (i32.const 1))

  ;; pycomms_alloc(size): one reusable region at $base (see echo.wat), grown
  ;; to hold the message, the reply built after it and 64 spare bytes.
  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.wrap_i64
        (i64.shr_u
          (i64.add (i64.extend_i32_u (global.get $base))
                   (i64.add (i64.shl (i64.extend_i32_u (local.get $size)) (i64.const 1))
                            (i64.const 65599)))   ;; 64 spare + 65535 to round up
          (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (unreachable)))))
    (global.get $base))

  (func (export "pycomms_handle")
        (param $kind i32) (param $ptr i32) (param $slen i32) (param $plen i32) (param $hlen i32)
        (result i32)
    (local $r i32) (local $n i32) (local $out i32) (local $pages i32) (local $rr i32)
    ;; call(subject = payload, no data, timeout 0)
    (local.set $r (call $call (i32.add (local.get $ptr) (local.get $slen)) (local.get $plen)
                              (i32.const 0) (i32.const 0) (i32.const 0)))
    ;; length of the reply, or of the error text on failure
    (local.set $n (local.get $r))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (local.set $n (call $result (i32.const 0) (i32.const 0)))))
    ;; copy it after the message, growing memory when it does not fit
    (local.set $out (i32.add (local.get $ptr)
                             (i32.add (local.get $slen) (i32.add (local.get $plen) (local.get $hlen)))))
    (local.set $pages
      (i32.wrap_i64 (i64.shr_u (i64.add (i64.add (i64.extend_i32_u (local.get $out))
                                                 (i64.extend_i32_u (local.get $n)))
                                        (i64.const 65535))
                               (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (unreachable)))))
    (drop (call $result (local.get $out) (local.get $n)))
    (local.set $rr (call $reply (local.get $out) (local.get $n)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (return (i32.sub (i32.const 0) (local.get $r)))))
    (if (i32.lt_s (local.get $rr) (i32.const 0))
      (then (return (i32.sub (i32.const 0) (local.get $rr)))))
    (i32.const 0))
)
