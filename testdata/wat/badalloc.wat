;; badalloc.wat - a plugin whose allocator returns an out-of-bounds pointer.
;;
;; What it does: pycomms_alloc(size) always returns 0x7FFFFFF0, far outside
;; its 1-page (64 KiB) memory. pycomms_handle would reply "handled"; a
;; conforming host never calls it for this plugin.
;;
;; What the host must answer: an out-of-bounds pycomms_alloc result is an ABI
;; violation (SPEC.md section 4): every message fails with status trap before
;; pycomms_handle is called (so no reply "handled"), nothing is written
;; outside the memory, and the instance is replaced.
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "handled")

  (func (export "pycomms_abi_version") (result i32) (i32.const 1))

  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (i32.const 0x7FFFFFF0))

  (func (export "pycomms_handle")
        (param $kind i32) (param $ptr i32) (param $slen i32) (param $plen i32) (param $hlen i32)
        (result i32)
    (drop (call $reply (i32.const 16) (i32.const 7)))
    (i32.const 0))
)
