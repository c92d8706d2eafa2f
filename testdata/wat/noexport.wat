;; noexport.wat - a plugin that lacks the handler export.
;;
;; What it does: exports memory, pycomms_abi_version (1) and pycomms_alloc,
;; but no pycomms_handle.
;;
;; What the host must answer: it refuses to load the plugin, with an error
;; naming the missing export "pycomms_handle"; no instance serves messages.
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
)
