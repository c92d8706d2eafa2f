;; codec_call.wat - a codec that imports call, which a codec may not use.
;;
;; What the host must answer: refused at load, naming the import
;; (abi/SPEC.md section 14.3).
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (import "pycomms:host/v1" "call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "pycomms_abi_version") (result i32) (i32.const 1))
  (func (export "pycomms_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "pycomms_codec_pairs") (result i32) (i32.const 0))
  (func (export "pycomms_codec_convert")
        (param i32 i32 i32 i32) (result i32)
    (i32.const 0))
)
