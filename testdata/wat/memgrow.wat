;; memgrow.wat - a handler that takes all the memory it can, then traps.
;;
;; What it does: pycomms_handle grows memory by one 64 KiB page at a time
;; until memory.grow returns -1 (the host's memory cap), then executes
;; `unreachable`. It makes no host calls.
;;
;; What the host must answer: memory.grow fails at the configured
;; limits.memory (never beyond it); the message fails with status trap and an
;; error naming the memory cap; the instance is replaced and the plugin keeps
;; serving with fresh instances. Without a memory cap this would grow to the
;; 4 GiB Wasm maximum, so hosts must always configure one.
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
    (block $full
      (loop $grow
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $grow)))
    (unreachable))
)
