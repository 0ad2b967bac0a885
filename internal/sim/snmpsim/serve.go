package snmpsim

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// LoadFile parses an .snmprec recording.
func LoadFile(path string) ([]Var, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snmpsim: %w", err)
	}
	defer f.Close()
	return ParseSnmprec(filepath.Base(path), f)
}

// Serve starts an agent for vars on addr ("127.0.0.1:0" picks a free
// port). It stops when ctx is done or Close is called.
func Serve(ctx context.Context, addr string, vars []Var, o Options, log *slog.Logger) (*Agent, error) {
	st, err := NewStore(vars...)
	if err != nil {
		return nil, fmt.Errorf("snmpsim: %w", err)
	}
	a := NewAgent(st, o, log)
	if err := a.Listen(ctx, addr); err != nil {
		return nil, err
	}
	return a, nil
}
