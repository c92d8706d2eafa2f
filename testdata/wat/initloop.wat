;; initloop.wat - a plugin whose _initialize never returns.
;;
;; What it does: _initialize (the WASI reactor initializer the host calls
;; once per instance, before anything else) loops forever. Its other
;; exports are those of a minimal handler.
;;
;; What the host must answer (SPEC.md section 2): the load fails once the
;; start-up limit (10 s, or limits.timeout when longer) has passed, naming
;; it; nothing is left running.
(module
  (memory (export "memory") 1)
  (func (export "_initialize")
    (loop $forever (br $forever)))
  (func (export "pycomms_abi_version") (result i32) (i32.const 1))
  (func (export "pycomms_alloc") (param $size i32) (result i32) (i32.const 0))
  (func (export "pycomms_handle")
        (param $kind i32) (param $ptr i32) (param $slen i32) (param $plen i32) (param $hlen i32)
        (result i32)
    (i32.const 0))
)
