;; echo.wat - the reference pycomms ABI v1 handler, written by hand.
;;
;; What it does: for a request, replies with the payload with ASCII a-z
;; upper-cased (all other bytes unchanged); for a send or an event it does
;; nothing. The subject and the headers are ignored.
;;
;; What the host must answer:
;;   request "any.subject" payload "hello, World 1" -> status ok, reply "HELLO, WORLD 1"
;;   request with an empty payload                  -> status ok, empty reply
;;   send / event                                   -> status ok, no reply
;;   a batch of sends and events (SPEC 3.1)         -> 0 failed, no reply
;;   a message that memory cannot hold twice over under limits.memory
;;                                                  -> status too_large, instance kept
;;
;; This module shows that ABI v1 needs no language runtime, SDK or CBOR:
;; one import, three exported functions and the memory (a fourth,
;; optional, takes sends and events in batches).
(module
  ;; reply(ptr, len) -> 0, or a negated status (e.g. -3 too_large)
  (import "pycomms:host/v1" "reply" (func $reply (param i32 i32) (result i32)))

  (memory (export "memory") 1)

  ;; Every message is copied to the same region, starting at $base (one
  ;; 64 KiB page in; the first page is left to constants). The reply is built
  ;; right after the message, so a message of n bytes needs 2n bytes.
  (global $base i32 (i32.const 65536))

  (func (export "pycomms_abi_version") (result i32)
    (i32.const 1))

  ;; pycomms_alloc(size): a bump allocator that resets on every message: it
  ;; returns $base after growing memory to hold 2*size bytes there, or 0
  ;; when memory cannot grow that far (the host then fails the message with
  ;; too_large and keeps this instance, which is still consistent).
  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (local $pages i32)
    ;; pages needed = ceil((base + 2*size) / 64 KiB), computed in i64
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
          (then (return (i32.const 0))))))   ;; over the memory limit
    (global.get $base))

  ;; pycomms_handle(kind, ptr, subject_len, payload_len, headers_len) -> status
  (func (export "pycomms_handle")
        (param $kind i32) (param $ptr i32) (param $slen i32) (param $plen i32) (param $hlen i32)
        (result i32)
    (local $src i32) (local $dst i32) (local $i i32) (local $b i32) (local $r i32)
    ;; only requests get a reply (kind 1); sends and events succeed silently
    (if (i32.ne (local.get $kind) (i32.const 1))
      (then (return (i32.const 0))))
    ;; payload starts after the subject; the reply goes after the whole message
    (local.set $src (i32.add (local.get $ptr) (local.get $slen)))
    (local.set $dst (i32.add (local.get $src) (i32.add (local.get $plen) (local.get $hlen))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $plen)))
        (local.set $b (i32.load8_u (i32.add (local.get $src) (local.get $i))))
        ;; 'a'..'z' -> 'A'..'Z'
        (if (i32.le_u (i32.sub (local.get $b) (i32.const 97)) (i32.const 25))
          (then (local.set $b (i32.sub (local.get $b) (i32.const 32)))))
        (i32.store8 (i32.add (local.get $dst) (local.get $i)) (local.get $b))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    ;; a failed reply (e.g. too large) becomes this message's status
    (local.set $r (call $reply (local.get $dst) (local.get $plen)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (return (i32.sub (i32.const 0) (local.get $r)))))
    (i32.const 0))

  ;; pycomms_handle_batch(ptr, len, count) -> how many records failed.
  ;; Sends and events need nothing from echo: it walks the records (a
  ;; 16-byte fixed part of kind, subject_len, payload_len, headers_len,
  ;; then those bytes) and traps when they do not end exactly at ptr+len.
  (func (export "pycomms_handle_batch") (param $ptr i32) (param $len i32) (param $count i32) (result i32)
    (local $p i32)
    (local.set $p (local.get $ptr))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $count)))
        (local.set $p
          (i32.add (local.get $p)
            (i32.add (i32.const 16)
              (i32.add (i32.load offset=4 (local.get $p))
                (i32.add (i32.load offset=8 (local.get $p)) (i32.load offset=12 (local.get $p)))))))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $next)))
    (if (i32.ne (local.get $p) (i32.add (local.get $ptr) (local.get $len)))
      (then (unreachable)))
    (i32.const 0))
)
