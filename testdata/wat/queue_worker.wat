;; queue_worker.wat - a consumer of a durable queue (abi/SPEC.md section 15).
;;
;; What it does: a message whose payload starts with "p" (poison) fails
;; every time; one starting with "f" (flaky) fails on this instance's odd
;; deliveries of such messages and succeeds on the even ones; any other
;; message succeeds. A message that succeeds is published, payload as it
;; is, on topic "worked", so a test sees which deliveries were
;; acknowledged.
;;
;; What the host must answer (the plugin needs grants: [publish]):
;;   "job-1"            -> ok; one event "job-1" on "worked"
;;   "poison"           -> handler_error (7) on every delivery; no event
;;   "flaky", delivered twice on one instance -> handler_error, then ok and
;;                         one event "flaky" on "worked"
(module
  (import "pycomms:host/v1" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "worked")
  (global $base i32 (i32.const 65536))
  (global $flaky (mut i32) (i32.const 0)) ;; deliveries of flaky messages so far

  (func (export "pycomms_abi_version") (result i32) (i32.const 1))

  ;; one region at $base, grown to hold the message and 64 spare bytes
  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.wrap_i64
        (i64.shr_u
          (i64.add (i64.extend_i32_u (global.get $base))
                   (i64.add (i64.extend_i32_u (local.get $size)) (i64.const 65599)))
          (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (unreachable)))))
    (global.get $base))

  (func (export "pycomms_handle")
        (param $kind i32) (param $ptr i32) (param $slen i32) (param $plen i32) (param $hlen i32)
        (result i32)
    (local $p i32) (local $first i32) (local $r i32)
    (local.set $p (i32.add (local.get $ptr) (local.get $slen)))
    (if (local.get $plen)
      (then (local.set $first (i32.load8_u (local.get $p)))))
    (if (i32.eq (local.get $first) (i32.const 0x70)) ;; 'p'
      (then (return (i32.const 7))))
    (if (i32.eq (local.get $first) (i32.const 0x66)) ;; 'f'
      (then
        (global.set $flaky (i32.add (global.get $flaky) (i32.const 1)))
        (if (i32.and (global.get $flaky) (i32.const 1))
          (then (return (i32.const 7))))))
    (local.set $r (call $publish (i32.const 16) (i32.const 6) (local.get $p) (local.get $plen)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (return (i32.sub (i32.const 0) (local.get $r)))))
    (i32.const 0))
)
