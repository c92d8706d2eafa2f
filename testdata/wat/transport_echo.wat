;; transport_echo.wat - the reference pycomms transport plugin (SPEC section 13), written by hand.
;;
;; What it does: a line protocol. Bytes from a connection are consumed up
;; to the last newline; those whole lines are written back on the same
;; connection and published as one event on topic "wire.in" (a partial
;; line stays with the host until the rest arrives). A message routed out
;; through the transport has its payload written on the last connection
;; that opened; a request is answered with that payload. A dialed
;; connection gets "tick\n" from a 20 ms timer.
;;
;; What the host must answer:
;;   peer writes "ab\ncd"        -> peer reads "ab\n"; event wire.in "ab\n"; "cd" kept
;;   peer then writes "\n"       -> peer reads "cd\n"
;;   request x.y "hi" routed out -> peer reads "hi"; the caller gets "hi"
;;   no connection open          -> the request fails with unreachable
;;   a dialed connection         -> the server reads "tick\n" about 20 ms later
(module
  (import "pycomms:host/v1" "conn_write" (func $write (param i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "timer_set" (func $timer (param i32 i32) (result i32)))
  (import "pycomms:host/v1" "deliver" (func $deliver (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "pycomms:host/v1" "respond" (func $respond (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "wire.in")   ;; 7 bytes; the event's subject is built at 32
  (data (i32.const 64) "tick\n")
  (global $base i32 (i32.const 65536))
  (global $last (mut i32) (i32.const 0))  ;; the connection opened last, 0: none

  (func (export "pycomms_abi_version") (result i32) (i32.const 1))

  ;; one buffer at $base, grown to hold 2*size+7: room for the event built
  ;; after it, its 7-byte subject included (without the 7, a 32 KiB data
  ;; event of whole lines ran off the end of memory)
  (func (export "pycomms_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.wrap_i64 (i64.shr_u
      (i64.add (i64.extend_i32_u (global.get $base))
               (i64.add (i64.shl (i64.extend_i32_u (local.get $size)) (i64.const 1)) (i64.const 65542)))
      (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
        (then (return (i32.const 0))))))
    (global.get $base))

  ;; pycomms_transport_event(event, id, arg, ptr, len_a, len_b, len_c)
  (func (export "pycomms_transport_event")
        (param $ev i32) (param $id i32) (param $arg i32) (param $ptr i32)
        (param $la i32) (param $lb i32) (param $lc i32) (result i32)
    (local $n i32) (local $ev_at i32)
    ;; dialed (1): remember it and set timer 1; accepted (2): remember it
    (if (i32.le_u (i32.sub (local.get $ev) (i32.const 1)) (i32.const 1))
      (then
        (global.set $last (local.get $id))
        (if (i32.eq (local.get $ev) (i32.const 1))
          (then (drop (call $timer (i32.const 1) (i32.const 20)))))
        (return (i32.const 0))))
    ;; data (3): consume up to the last newline
    (if (i32.eq (local.get $ev) (i32.const 3))
      (then
        (local.set $n (local.get $la))
        (block $found
          (loop $back
            (br_if $found (i32.eqz (local.get $n)))
            (br_if $found (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.sub (local.get $n) (i32.const 1)))) (i32.const 10)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br $back)))
        (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
        (drop (call $write (local.get $id) (local.get $ptr) (local.get $n)))
        ;; the event: subject "wire.in" then the lines, after the data
        (local.set $ev_at (i32.add (local.get $ptr) (local.get $la)))
        (memory.copy (local.get $ev_at) (i32.const 16) (i32.const 7))
        (memory.copy (i32.add (local.get $ev_at) (i32.const 7)) (local.get $ptr) (local.get $n))
        (drop (call $deliver (i32.const 3) (i32.const 0) (local.get $ev_at) (i32.const 7) (local.get $n) (i32.const 0)))
        (return (local.get $n))))
    ;; closed (4): forget it
    (if (i32.eq (local.get $ev) (i32.const 4))
      (then
        (if (i32.eq (local.get $id) (global.get $last)) (then (global.set $last (i32.const 0))))
        (return (i32.const 0))))
    ;; message (5): write the payload on the last connection, answer a request with it
    (if (i32.eq (local.get $ev) (i32.const 5))
      (then
        (if (i32.eqz (global.get $last)) (then (return (i32.const -11)))) ;; -unreachable
        (drop (call $write (global.get $last) (i32.add (local.get $ptr) (local.get $la)) (local.get $lb)))
        (if (i32.ne (local.get $id) (i32.const 0))
          (then (drop (call $respond (local.get $id) (i32.const 0) (i32.add (local.get $ptr) (local.get $la)) (local.get $lb)))))
        (return (i32.const 0))))
    ;; timer (7): tick on the last connection
    (if (i32.eq (local.get $ev) (i32.const 7))
      (then (if (global.get $last)
        (then (drop (call $write (global.get $last) (i32.const 64) (i32.const 5)))))))
    (i32.const 0))
)
