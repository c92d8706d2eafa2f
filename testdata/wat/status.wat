;; status.wat - a handler that returns whatever status it is told to.
;;
;; What it does: pycomms_handle sets the reply to "text from the guest" and
;; returns the first payload byte as its status (0, ok, for an empty
;; payload). It needs no grant.
;;
;; What the host must answer (SPEC.md section 3): status 9 (no_method) fails
;; with the host's own text, dropping the reply text; status 5 (timeout)
;; fails with the reply text as the error; a status outside 0..12 is an ABI
;; violation: trap, instance replaced.
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $base i32 (i32.const 65536))
  (data (i32.const 16) "text from the guest")

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
    (drop (call $reply (i32.const 16) (i32.const 19)))
    ;; the first payload byte is the status (0 when the payload is empty)
    (if (result i32) (i32.eqz (local.get $plen))
      (then (i32.const 0))
      (else (i32.load8_u (i32.add (local.get $ptr) (local.get $slen))))))
)
