;; badwrite.wat - a handler that asks the host to write outside its memory.
;;
;; What it does: pycomms_handle calls config(ptr=0xFFFFFFF0, cap=64), a
;; destination outside its 1-page memory, ignores the result and returns
;; 0 (ok). The plugin must have a config for the host to copy.
;;
;; What the host must answer: an out-of-bounds destination is an ABI
;; violation like an out-of-bounds source (SPEC.md section 4): status trap,
;; never invalid, nothing written, and the instance is replaced.
(module
  (import "pycomms:host/v1" "config" (func $config (param i32 i32) (result i32)))
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
    (drop (call $config (i32.const 0xFFFFFFF0) (i32.const 64)))
    (i32.const 0))
)
