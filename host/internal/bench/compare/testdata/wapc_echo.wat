;; wapc_echo.wat - the WAT echo of testdata/wat/echo.wat behind the waPC
;; guest protocol, so that the plugin-call comparison runs the same guest
;; code in waPC as in pycomms-host and the bare-wazero floor.
;;
;; What it does: __guest_call(op_len, payload_len) fetches the operation and
;; the payload with __guest_request and hands them to $handle, which is
;; echo.wat's pycomms_handle copied verbatim (TestHandleBodiesIdentical
;; checks the text): the operation plays the subject, and $reply passes the
;; upper-cased payload to __guest_response. Same function, so the compiler
;; gives every contender the same machine code for the loop.
;;
;; What the host must answer:
;;   invoke "echo" payload "hello, World 1" -> "HELLO, WORLD 1"
;;   invoke with an empty payload          -> empty reply
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))

  (memory (export "memory") 1)

  ;; The operation and the payload are copied to $base (one page in) and
  ;; the reply is built right after them, as in echo.wat.
  (global $base i32 (i32.const 65536))

  ;; $reply stands in for pycomms' reply import: waPC takes the reply
  ;; through __guest_response, which cannot fail.
  (func $reply (param $ptr i32) (param $len i32) (result i32)
    (call $guest_response (local.get $ptr) (local.get $len))
    (i32.const 0))

  ;; __guest_call(op_len, payload_len) -> 1 on success, 0 when memory
  ;; cannot grow to hold the operation, the payload and the reply.
  (func (export "__guest_call") (param $olen i32) (param $plen i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.wrap_i64
        (i64.shr_u
          (i64.add (i64.extend_i32_u (global.get $base))
                   (i64.add (i64.add (i64.extend_i32_u (local.get $olen))
                                     (i64.shl (i64.extend_i32_u (local.get $plen)) (i64.const 1)))
                            (i64.const 65535)))
          (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (call $guest_request (global.get $base) (i32.add (global.get $base) (local.get $olen)))
    ;; a request (kind 1) whose subject is the operation, without headers;
    ;; status 0 (ok) is success
    (i32.eqz (call $handle (i32.const 1) (global.get $base) (local.get $olen) (local.get $plen) (i32.const 0))))

  ;; echo.wat's pycomms_handle, verbatim but for its name.
  (func $handle
        (param $kind i32) (param $ptr i32) (param $slen i32) (param $plen i32) (param $hlen i32)
        (result i32)
    (local $src i32) (local $dst i32) (local $i i32) (local $b i32) (local $r i32)
    ;; only requests get a reply (kind 1); sends and events succeed silently
    (if (i32.ne (local.get $kind) (i32.const 1))
      (then (return (i32.const 0))))
    ;; payload starts after the subject; the reply goes after the whole message
    (local.set $src (i32.add (local.get $ptr) (local.get $slen)))
    (local.set $dst (i32.add (local.get $src) (i32.add (local.get $plen) (local.get $hlen))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $plen)))
        (local.set $b (i32.load8_u (i32.add (local.get $src) (local.get $i))))
        ;; 'a'..'z' -> 'A'..'Z'
        (if (i32.le_u (i32.sub (local.get $b) (i32.const 97)) (i32.const 25))
          (then (local.set $b (i32.sub (local.get $b) (i32.const 32)))))
        (i32.store8 (i32.add (local.get $dst) (local.get $i)) (local.get $b))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    ;; a failed reply (e.g. too large) becomes this message's status
    (local.set $r (call $reply (local.get $dst) (local.get $plen)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (return (i32.sub (i32.const 0) (local.get $r)))))
    (i32.const 0))
)
