;; loop.wat - a handler that never returns.
;;
;; What it does: pycomms_handle spins in a real `loop`/`br` forever,
;; counting in a global; it makes no host calls and never returns.
;;
;; What the host must answer: once the message's deadline (limits.timeout or
;; the caller's) passes, the call fails with status timeout, the instance is
;; stopped and replaced, and the host and other plugins keep serving.
(module
  (memory (export "memory") 1)
  (global $base i32 (i32.const 65536))
  (global $spins (mut i64) (i64.const 0))

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
    (loop $forever
      (global.set $spins (i64.add (global.get $spins) (i64.const 1)))
      (br $forever))
    (unreachable))
)
