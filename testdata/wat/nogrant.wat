;; nogrant.wat - a handler that publishes, to test the publish grant.
;;
;; What it does: pycomms_handle calls publish(topic "x.y", data "z"). When
;; publish fails it returns the negated result as its status (so 1 = denied
;; when the plugin has no `publish` grant); when it succeeds, a request gets
;; the reply "published" and status ok.
;;
;; What the host must answer:
;;   without the publish grant -> status denied (1), nothing is published, the
;;                                host logs the refusal, and the caller's error
;;                                names the capability "publish"
;;   with grants: [publish]    -> status ok, reply "published", and one event
;;                                "z" on topic "x.y"
(module
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))
  (import "pycomms:host/v1" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x.y")
  (data (i32.const 20) "z")
  (data (i32.const 32) "published")
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
    (local $r i32)
    (local.set $r (call $publish (i32.const 16) (i32.const 3) (i32.const 20) (i32.const 1)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (return (i32.sub (i32.const 0) (local.get $r)))))
    (if (i32.ne (local.get $kind) (i32.const 1))
      (then (return (i32.const 0))))
    (local.set $r (call $reply (i32.const 32) (i32.const 9)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (return (i32.sub (i32.const 0) (local.get $r)))))
    (i32.const 0))
)
