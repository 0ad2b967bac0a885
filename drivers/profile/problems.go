package profile

import (
	"errors"
	"fmt"
	"strings"
)

// Problem is one thing wrong with a profile, located in its file.
type Problem struct {
	File string
	Line int
	Key  string // "points[3].scale"
	Msg  string
}

func (p Problem) Error() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	if p.Key == "" {
		return loc + ": " + p.Msg
	}
	return loc + ": " + p.Key + ": " + p.Msg
}

// Problems collects every problem found while loading, so that one run of
// `emberctl profile lint` reports all of them.
type Problems struct {
	File string
	List []Problem
}

// Add records a problem at line for key.
func (ps *Problems) Add(line int, key, format string, args ...any) {
	ps.List = append(ps.List, Problem{File: ps.File, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Err returns nil or every problem joined, one per line.
func (ps *Problems) Err() error {
	if len(ps.List) == 0 {
		return nil
	}
	errs := make([]error, len(ps.List))
	for i, p := range ps.List {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// String lists the problems one per line.
func (ps *Problems) String() string {
	var b strings.Builder
	for _, p := range ps.List {
		b.WriteString(p.Error())
		b.WriteByte('\n')
	}
	return b.String()
}
