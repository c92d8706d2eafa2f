;; bigreply.wat - a handler whose reply is too large.
;;
;; What it does: pycomms_handle calls reply(ptr, len) with len = 2 MiB
;; (2097152 zero bytes, inside its memory, which starts at 34 pages), ignores
;; the result and returns 0 (ok).
;;
;; What the host must answer, with limits.max_reply = 1 MiB (as in the tests):
;; reply returns -3 (too_large) without copying anything, and because the
;; handler still returns ok, the request fails with status too_large. The
;; instance stays healthy (no trap). With a max_reply of at least 2 MiB the
;; request succeeds with 2097152 zero bytes.
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  ;; page 0: unused; pages 1..32: the 2 MiB reply; page 33: messages
  (memory (export "memory") 34)
  (global $big i32 (i32.const 65536))
  (global $base i32 (i32.const 2162688))   ;; 65536 + 2 MiB

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
    (drop (call $reply (global.get $big) (i32.const 2097152)))
    (i32.const 0))
)
