package node

import (
	"errors"

	"github.com/pycomms/pycomms-host/host/internal/identity"
)

// MissingKeyError reports that the node key file does not exist yet, so
// [LoadID] without create has no id to give. A node creates the key at Path
// when it first starts.
type MissingKeyError struct {
	Path string // the key file, as given to LoadID
	Err  error  // the file system's error; errors.Is(Err, fs.ErrNotExist)
}

func (e *MissingKeyError) Error() string { return "no node key at " + e.Path }
func (e *MissingKeyError) Unwrap() error { return e.Err }

// LoadID returns the node id that the key file at keyPath gives (with the
// certificate at certPath, when not empty, which must be for that key): the
// id [Node.ID] reports once a node with that identity config starts, and the
// one other hosts pin in trust.nodes. Without create a missing key file is a
// *[MissingKeyError]; with create the key is made there, as [Node.Start]
// would. A key file that cannot be read or used, or that others may read,
// is an error that names it.
func LoadID(keyPath, certPath string, create bool) (string, error) {
	load := identity.Load
	if create {
		load = identity.LoadOrCreate
	}
	id, err := load(keyPath, certPath)
	if missing := (*identity.MissingKeyError)(nil); errors.As(err, &missing) {
		return "", &MissingKeyError{Path: missing.Path, Err: missing.Err}
	}
	if err != nil {
		return "", err
	}
	return string(id.ID), nil
}

// CheckID reports whether s is a well-formed node id (the form [LoadID] and
// [Node.ID] return), and if not, what is wrong with it.
func CheckID(s string) error {
	_, err := identity.ParseID(s)
	return err
}
