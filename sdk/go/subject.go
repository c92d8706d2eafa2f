package pycomms

import (
	"errors"

	"github.com/pycomms/pycomms-host/abi"
)

// checkSubject reports why s is not a valid subject (wildcards unset) or
// topic pattern (wildcards set). The rules are the host's own
// (abi.ValidateSubject, abi.ValidatePattern), so a registration the SDK
// accepts is one the host routes. The error is the rule alone: the caller
// names the subject.
func checkSubject(s string, wildcards bool) error {
	check := abi.ValidateSubject
	if wildcards {
		check = abi.ValidatePattern
	}
	err := check(s)
	if se := (*abi.SubjectError)(nil); errors.As(err, &se) {
		return errors.New(se.Reason)
	}
	return err
}
