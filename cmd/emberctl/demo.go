package main

import (
	"context"
	"errors"
	"io"
)

// Placeholder until the verb's owner writes it.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
