;; codec_both.wat - a module that exports both pycomms_handle and
;; pycomms_codec_convert.
;;
;; What the host must answer: refused at load, whatever kind it is
;; configured as, with an error naming both exports (abi/SPEC.md
;; section 14).
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "pycomms_abi_version") (result i32) (i32.const 1))
  (func (export "pycomms_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "pycomms_handle")
        (param i32 i32 i32 i32 i32) (result i32)
    (i32.const 0))
  (func (export "pycomms_codec_pairs") (result i32) (i32.const 0))
  (func (export "pycomms_codec_convert")
        (param i32 i32 i32 i32) (result i32)
    (i32.const 0))
)
