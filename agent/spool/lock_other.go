//go:build !unix

package spool

import "os"

// lockDir does not lock off Unix.
func lockDir(string) (*os.File, error) { return nil, nil }
