;; badbatchsig.wat - exports pycomms_handle_batch with the wrong signature:
;; the host refuses to load it and names the export.
;;
;; What the host must answer:
;;   load -> refused: optional export "pycomms_handle_batch" has signature
;;           (i32,i32)->(i32), want (i32,i32,i32)->(i32)
(module
  (memory (export "memory") 1)
  (func (export "pycomms_abi_version") (result i32) (i32.const 1))
  (func (export "pycomms_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "pycomms_handle") (param i32 i32 i32 i32 i32) (result i32) (i32.const 0))
  (func (export "pycomms_handle_batch") (param i32 i32) (result i32) (i32.const 0))
)
