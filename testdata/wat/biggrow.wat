;; biggrow.wat - a handler whose one large memory.grow is refused, then traps.
;;
;; What it does: pycomms_handle asks for 4096 more pages (256 MiB) at once.
;; Under a smaller limits.memory memory.grow returns -1 and leaves memory
;; as it was (a few pages, far below the cap); the handler then executes
;; `unreachable`. It makes no host calls.
;;
;; What the host must answer: status trap with an error naming the memory
;; cap, although memory never came near it (a failed memory.grow during the
;; call is what counts), and the instance is replaced.
(module
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
    ;; 4096 pages = 256 MiB, far over any cap the tests set: refused, and
    ;; memory stays where it was.
    (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1))
      (then (unreachable)))
    (i32.const 0))
)
