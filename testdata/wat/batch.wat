;; batch.wat - a subscriber that takes sends and events in batches
;; (pycomms_handle_batch, SPEC section 3.1), written by hand.
;;
;; For every record, in order:
;;   payload "wait"       -> calls gate.wait (so a test can hold the
;;                           instance while messages queue behind it)
;;   payload "fail..."    -> fails: sets the error text, counts one failure
;;   anything else        -> publishes the payload on topic "seen"
;; After a batch it publishes the batch's record count (4 bytes, little
;; endian) on topic "batches", and it traps when the records do not end
;; exactly at ptr+len. A message too large for a batch arrives through
;; pycomms_handle and is treated as one record.
;;
;; What the host must answer (host/internal/plugin TestBatchDelivery):
;;   events queued while the instance is busy -> delivered in batches of at
;;                             most 256 records and 64 KiB, in order, each
;;                             once; the "fail" ones counted as errors and
;;                             logged with "a record asked to fail"
;;   an event larger than a batch             -> through pycomms_handle
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (import "pycomms:host/v1" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "call" (func $call (param i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)
  (data (i32.const 0) "seen")
  (data (i32.const 16) "batches")
  (data (i32.const 32) "gate.wait")
  (data (i32.const 48) "a record asked to fail")

  ;; messages are copied from here on; the first page holds the constants
  (global $base i32 (i32.const 65536))

  (func (export "pycomms_abi_version") (result i32)
    (i32.const 1))

  ;; pycomms_alloc(size): grows memory to hold size bytes at $base, or 0
  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.wrap_i64
        (i64.shr_u
          (i64.add (i64.extend_i32_u (global.get $base))
                   (i64.add (i64.extend_i32_u (local.get $size)) (i64.const 65535)))
          (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.get $base))

  ;; $record handles one payload; returns 1 when it failed
  (func $record (param $p i32) (param $n i32) (result i32)
    (if (i32.eq (local.get $n) (i32.const 4))
      (then
        ;; "wait" is 0x74696177 read little endian
        (if (i32.eq (i32.load (local.get $p)) (i32.const 0x74696177))
          (then
            (drop (call $call (i32.const 32) (i32.const 9) (i32.const 0) (i32.const 0) (i32.const 10000)))
            (return (i32.const 0))))))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        ;; "fail" is 0x6c696166 read little endian
        (if (i32.eq (i32.load (local.get $p)) (i32.const 0x6c696166))
          (then
            (drop (call $reply (i32.const 48) (i32.const 22)))
            (return (i32.const 1))))))
    (drop (call $publish (i32.const 0) (i32.const 4) (local.get $p) (local.get $n)))
    (i32.const 0))

  ;; pycomms_handle: one message; a failed record is a handler_error (7)
  (func (export "pycomms_handle")
        (param $kind i32) (param $ptr i32) (param $slen i32) (param $plen i32) (param $hlen i32)
        (result i32)
    (if (call $record (i32.add (local.get $ptr) (local.get $slen)) (local.get $plen))
      (then (return (i32.const 7))))
    (i32.const 0))

  ;; pycomms_handle_batch(ptr, len, count) -> records that failed
  (func (export "pycomms_handle_batch") (param $ptr i32) (param $len i32) (param $count i32) (result i32)
    (local $i i32) (local $p i32) (local $failed i32)
    (local $slen i32) (local $plen i32) (local $hlen i32)
    (local.set $p (local.get $ptr))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        ;; fixed part: kind, subject_len, payload_len, headers_len
        (local.set $slen (i32.load offset=4 (local.get $p)))
        (local.set $plen (i32.load offset=8 (local.get $p)))
        (local.set $hlen (i32.load offset=12 (local.get $p)))
        (local.set $failed
          (i32.add (local.get $failed)
            (call $record
              (i32.add (local.get $p) (i32.add (i32.const 16) (local.get $slen)))
              (local.get $plen))))
        (local.set $p
          (i32.add (local.get $p)
            (i32.add (i32.const 16)
              (i32.add (local.get $slen) (i32.add (local.get $plen) (local.get $hlen))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (if (i32.ne (local.get $p) (i32.add (local.get $ptr) (local.get $len)))
      (then (unreachable)))
    (i32.store (i32.const 96) (local.get $count))
    (drop (call $publish (i32.const 16) (i32.const 7) (i32.const 96) (i32.const 4)))
    (local.get $failed))
)
