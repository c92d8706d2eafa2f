//go:build !wasip1

package pycomms

// setReplyHook does nothing outside a wasip1 build: there is no host to
// reply to (the package builds natively only for its tests and tools).
func setReplyHook() {}
