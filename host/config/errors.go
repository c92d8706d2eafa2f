package config

import (
	"slices"
	"strconv"
	"strings"
)

// Error is one problem found in a configuration. It says where the problem
// is as precisely as the source allows: a file position for values read
// from the config file, the variable name for values from the environment,
// and the key path (list indexes from 0, "plugins[1].limits.memory") for
// both.
type Error struct {
	File string // config file as passed to Load; "" for env and built-in values
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based; 0 when unknown
	Key  string // key path, e.g. "plugins[0].kind"; "" for whole-file problems
	Env  string // environment variable that supplied the value, e.g. "PYCOMMS_CONTROL"
	Msg  string
	// Err is the underlying cause, when there is one (a failed read or
	// stat), so that callers can test it with errors.Is.
	Err error
}

// Error formats the problem as "FILE:LINE:COL: KEY: MSG", leaving out the
// parts that are unknown, or as "env NAME: KEY: MSG" for a value that came
// from the environment.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString("env ")
		b.WriteString(e.Env)
	case e.File != "" || e.Line > 0:
		b.WriteString(e.File)
		if e.Line > 0 {
			if e.File != "" {
				b.WriteByte(':')
			}
			b.WriteString(strconv.Itoa(e.Line))
			if e.Col > 0 {
				b.WriteByte(':')
				b.WriteString(strconv.Itoa(e.Col))
			}
		}
	}
	if e.Key != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Key)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Errors collects every problem of one configuration, so that an operator
// fixes them in one round instead of one per restart.
type Errors struct {
	List []*Error
}

// Add appends err; a nil err is ignored.
func (e *Errors) Add(err *Error) {
	if err != nil {
		e.List = append(e.List, err)
	}
}

// Error returns one problem per line, in the order of their position in the
// file; problems without a position and then environment problems follow.
func (e *Errors) Error() string {
	list := slices.Clone(e.List)
	sortErrors(list)
	lines := make([]string, len(list))
	for i, err := range list {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns every problem, so that errors.As can reach one *Error and
// errors.Is can reach a cause such as fs.ErrNotExist.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, err := range e.List {
		out[i] = err
	}
	return out
}

// orNil returns e when it holds a problem, and a nil error otherwise (never
// a typed nil, which would compare non-nil).
func (e *Errors) orNil() error {
	if len(e.List) == 0 {
		return nil
	}
	sortErrors(e.List)
	return e
}

// sortErrors orders problems the way an operator reads a file: whole-file
// problems first, then by position, then the ones that have no position
// (by key), then environment problems (by variable name).
func sortErrors(list []*Error) {
	group := func(e *Error) int {
		switch {
		case e.Env != "":
			return 3
		case e.Line > 0:
			return 1
		case e.File != "" && e.Key == "":
			return 0
		}
		return 2
	}
	slices.SortStableFunc(list, func(a, b *Error) int {
		if c := group(a) - group(b); c != 0 {
			return c
		}
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if c := a.Line - b.Line; c != 0 {
			return c
		}
		if c := a.Col - b.Col; c != 0 {
			return c
		}
		if c := strings.Compare(a.Env, b.Env); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// has reports whether a problem was recorded for key.
func (e *Errors) has(key string) bool {
	return slices.ContainsFunc(e.List, func(err *Error) bool { return err.Key == key })
}
