;; wrongabi.wat - a complete handler built for an ABI version this host
;; does not know.
;;
;; What it does: a working echo handler (a request gets its payload back
;; unchanged), except that pycomms_abi_version returns 7.
;;
;; What the host must answer: it refuses to load the plugin, with an error
;; naming both versions, e.g. "plugin ABI version 7 is not supported: this
;; host accepts 1..1"; no message is ever delivered to it. Replacing a
;; working plugin's file with this one is refused and the old version keeps
;; serving.
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $base i32 (i32.const 65536))

  (func (export "pycomms_abi_version") (result i32) (i32.const 7))

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
    (local $r i32)
    (if (i32.ne (local.get $kind) (i32.const 1))
      (then (return (i32.const 0))))
    (local.set $r (call $reply (i32.add (local.get $ptr) (local.get $slen)) (local.get $plen)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (return (i32.sub (i32.const 0) (local.get $r)))))
    (i32.const 0))
)
