;; wapc_echo.wat - the WAT echo of testdata/wat/echo.wat behind the waPC
;; guest protocol, so that the plugin-call comparison runs the same guest
;; work in both hosts.
;;
;; What it does: __guest_call(op_len, payload_len) fetches the operation and
;; the payload with __guest_request, upper-cases ASCII a-z of the payload
;; with the loop body of echo.wat (TestLoopBodiesIdentical checks the two
;; are the same text), hands the result to __guest_response and returns 1.
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

  ;; __guest_call(op_len, payload_len) -> 1 (success); grows memory to hold
  ;; the operation, the payload and the reply first (0 when it cannot).
  (func (export "__guest_call") (param $olen i32) (param $plen i32) (result i32)
    (local $pages i32) (local $src i32) (local $dst i32) (local $i i32) (local $b i32)
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
    ;; payload after the operation; the reply after the payload
    (local.set $src (i32.add (global.get $base) (local.get $olen)))
    (local.set $dst (i32.add (local.get $src) (local.get $plen)))
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
    (call $guest_response (local.get $dst) (local.get $plen))
    (i32.const 1))
)
