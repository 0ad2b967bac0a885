//go:build !linux

package spool

import "errors"

// freeBytes is not implemented off Linux: the bound is then MaxBytes alone.
func freeBytes(string) (int64, error) { return 0, errors.ErrUnsupported }
