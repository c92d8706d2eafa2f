;; codec_hostile.wat - a codec that misbehaves in every way the host must
;; survive, chosen by the pair's `to` (abi/SPEC.md section 14.4).
;;
;; Pairs, what convert does, and What the host must answer:
;;   type text/plain text/x-loop       spins forever
;;                                     -> timeout, instance replaced
;;   type text/plain text/x-trap       executes unreachable
;;                                     -> trap, instance replaced
;;   type text/plain text/x-big        replies with 65536 bytes
;;                                     -> too_large when limits.max_reply is below that
;;   type text/plain application/json  replies "{not json"
;;   type text/plain application/cbor  replies "{not json" (a CBOR text
;;                                     string head promising 27 bytes, 8 follow)
;;                                     -> internal (the host's output check), instance kept
;;   type text/plain text/x-status     returns status 99 (none in section 6)
;;                                     -> trap naming pycomms_codec_convert, instance replaced
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "type text/plain text/x-loop\ntype text/plain text/x-trap\ntype text/plain text/x-big\ntype text/plain application/json\ntype text/plain application/cbor\ntype text/plain text/x-status\n")
  (data (i32.const 512) "{not json")
  (global $spins (mut i64) (i64.const 0))

  (func (export "pycomms_abi_version") (result i32) (i32.const 1))

  ;; pycomms_alloc(size): the second page, whatever the size (the inputs
  ;; of the tests are small); 0 beyond one page.
  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536))
      (then (return (i32.const 0))))
    (if (i32.lt_u (memory.size) (i32.const 2))
      (then (drop (memory.grow (i32.const 1)))))
    (i32.const 65536))

  (func (export "pycomms_codec_pairs") (result i32)
    (drop (call $reply (i32.const 16) (i32.const 179)))
    (i32.const 0))

  (func (export "pycomms_codec_convert")
        (param $ptr i32) (param $flen i32) (param $tlen i32) (param $dlen i32) (result i32)
    (local $to i32) (local $r i32)
    (local.set $to (i32.add (local.get $ptr) (local.get $flen)))
    ;; "text/x-loop" and "text/x-trap": 11 bytes, told apart by byte 7
    (if (i32.eq (local.get $tlen) (i32.const 11))
      (then
        (if (i32.eq (i32.load8_u (i32.add (local.get $to) (i32.const 7))) (i32.const 108)) ;; 'l'
          (then
            (loop $forever
              (global.set $spins (i64.add (global.get $spins) (i64.const 1)))
              (br $forever))))
        (unreachable)))
    ;; "text/x-big": 10 bytes
    (if (i32.eq (local.get $tlen) (i32.const 10))
      (then
        (local.set $r (call $reply (i32.const 0) (i32.const 65536)))
        (if (i32.lt_s (local.get $r) (i32.const 0))
          (then (return (i32.sub (i32.const 0) (local.get $r)))))
        (return (i32.const 0))))
    ;; "text/x-status": 13 bytes
    (if (i32.eq (local.get $tlen) (i32.const 13))
      (then (return (i32.const 99))))
    ;; application/json and application/cbor: garbage
    (drop (call $reply (i32.const 512) (i32.const 9)))
    (i32.const 0))
)
