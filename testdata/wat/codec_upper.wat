;; codec_upper.wat - a codec plugin (abi/SPEC.md section 14) written by hand.
;;
;; Pairs:
;;   type text/plain text/x-upper   the payload with ASCII a-z upper-cased
;;   encoding identity x-rev        the payload's bytes reversed
;;   encoding x-rev identity        the same (reversing twice is the identity)
;;
;; What the host must answer:
;;   convert text/plain -> text/x-upper "hello, World" -> ok, "HELLO, WORLD"
;;   convert identity -> x-rev "abc"                   -> ok, "cba"
;;   any pair, data starting with byte 0xff            -> invalid, "codec_upper: input starts with 0xff"
;;
;; Like echo.wat it needs no runtime: reply is its one import.
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "type text/plain text/x-upper\nencoding identity x-rev\nencoding x-rev identity\n")
  (data (i32.const 256) "codec_upper: input starts with 0xff")
  (global $base i32 (i32.const 65536))

  (func (export "pycomms_abi_version") (result i32) (i32.const 1))

  ;; pycomms_alloc(size): one region at $base reused for every conversion,
  ;; grown to hold the input and the output built after it; 0 when memory
  ;; cannot grow that far (the host then fails with too_large).
  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.wrap_i64
        (i64.shr_u
          (i64.add (i64.extend_i32_u (global.get $base))
                   (i64.add (i64.shl (i64.extend_i32_u (local.get $size)) (i64.const 1))
                            (i64.const 65535)))
          (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.get $base))

  ;; pycomms_codec_pairs() -> status: the pairs text through reply.
  (func (export "pycomms_codec_pairs") (result i32)
    (drop (call $reply (i32.const 16) (i32.const 77)))
    (i32.const 0))

  ;; pycomms_codec_convert(ptr, from_len, to_len, data_len) -> status
  (func (export "pycomms_codec_convert")
        (param $ptr i32) (param $flen i32) (param $tlen i32) (param $dlen i32) (result i32)
    (local $src i32) (local $dst i32) (local $i i32) (local $b i32) (local $r i32)
    (local.set $src (i32.add (local.get $ptr) (i32.add (local.get $flen) (local.get $tlen))))
    (local.set $dst (i32.add (local.get $src) (local.get $dlen)))
    (if (i32.and (i32.gt_u (local.get $dlen) (i32.const 0))
                 (i32.eq (i32.load8_u (local.get $src)) (i32.const 255)))
      (then
        (drop (call $reply (i32.const 256) (i32.const 35)))
        (return (i32.const 2))))   ;; invalid
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $dlen)))
        (if (i32.eq (local.get $flen) (i32.const 10))   ;; "text/plain": upper-case
          (then
            (local.set $b (i32.load8_u (i32.add (local.get $src) (local.get $i))))
            (if (i32.le_u (i32.sub (local.get $b) (i32.const 97)) (i32.const 25))
              (then (local.set $b (i32.sub (local.get $b) (i32.const 32))))))
          (else   ;; x-rev either way: byte i of the output is byte n-1-i of the input
            (local.set $b (i32.load8_u
              (i32.add (local.get $src)
                       (i32.sub (i32.sub (local.get $dlen) (i32.const 1)) (local.get $i)))))))
        (i32.store8 (i32.add (local.get $dst) (local.get $i)) (local.get $b))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.set $r (call $reply (local.get $dst) (local.get $dlen)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (return (i32.sub (i32.const 0) (local.get $r)))))
    (i32.const 0))
)
