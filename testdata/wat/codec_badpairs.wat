;; codec_badpairs.wat - a codec whose pairs text is not valid: its second
;; line has two fields.
;;
;; What the host must answer: the load is refused with an error naming
;; line 2 (abi/SPEC.md section 14.2).
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "type text/plain text/x-upper\ntype text/plain\n")
  (func (export "pycomms_abi_version") (result i32) (i32.const 1))
  (func (export "pycomms_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "pycomms_codec_pairs") (result i32)
    (drop (call $reply (i32.const 16) (i32.const 45)))
    (i32.const 0))
  (func (export "pycomms_codec_convert")
        (param $ptr i32) (param $flen i32) (param $tlen i32) (param $dlen i32) (result i32)
    (i32.const 0))
)
