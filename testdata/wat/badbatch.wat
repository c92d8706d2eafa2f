;; badbatch.wat - hostile: pycomms_handle_batch claims one failure more
;; than the batch has records, which breaks the ABI (SPEC section 3.1):
;; the batch fails with trap and the instance is replaced.
;;
;; What the host must answer:
;;   any event -> counted as failed, logged as an ABI violation naming
;;                pycomms_handle_batch; the instance is replaced and the
;;                next request is served
(module
  (memory (export "memory") 1)
  (func (export "pycomms_abi_version") (result i32) (i32.const 1))
  (func (export "pycomms_alloc") (param i32) (result i32)
    (if (i32.gt_u (local.get 0) (i32.const 32768))
      (then (return (i32.const 0))))
    (i32.const 1024))
  (func (export "pycomms_handle") (param i32 i32 i32 i32 i32) (result i32) (i32.const 0))
  (func (export "pycomms_handle_batch") (param $ptr i32) (param $len i32) (param $count i32) (result i32)
    (i32.add (local.get $count) (i32.const 1)))
)
