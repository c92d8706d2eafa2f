;; echo_a.wat - version "A" of an echo handler, for the hot-swap tests.
;;
;; What it does: for a request, replies "A:" followed by the payload
;; unchanged; for a send or an event it does nothing. Subject and headers are
;; ignored. echo_a.wat and echo_b.wat differ only in that letter, so a test
;; can tell which version answered.
;;
;; What the host must answer:
;;   request payload "ping" -> status ok, reply "A:ping"
;;   request, empty payload -> status ok, reply "A:"
;;   send / event           -> status ok, no reply
(module
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
    (local $src i32) (local $dst i32) (local $i i32) (local $r i32)
    (if (i32.ne (local.get $kind) (i32.const 1))
      (then (return (i32.const 0))))
    (local.set $src (i32.add (local.get $ptr) (local.get $slen)))
    (local.set $dst (i32.add (local.get $src) (i32.add (local.get $plen) (local.get $hlen))))
    ;; "A:" then the payload
    (i32.store8 (local.get $dst) (i32.const 65))            ;; 'A'
    (i32.store8 offset=1 (local.get $dst) (i32.const 58))   ;; ':'
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $plen)))
        (i32.store8 offset=2 (i32.add (local.get $dst) (local.get $i))
                    (i32.load8_u (i32.add (local.get $src) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.set $r (call $reply (local.get $dst) (i32.add (local.get $plen) (i32.const 2))))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (return (i32.sub (i32.const 0) (local.get $r)))))
    (i32.const 0))
)
