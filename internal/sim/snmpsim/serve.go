package snmpsim

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/emberwatch/emberwatch/drivers/profile"
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

// Update re-encodes prof with a new full set of values (ProfileOptions as
// for FromProfile: points left out go back to their defaults) into the
// agent's store, for scripted scenarios: call it at each simulation tick.
// Rows must stay as first built.
func (a *Agent) Update(prof *profile.Profile, o ProfileOptions) error {
	vars, err := FromProfile(prof, o)
	if err != nil {
		return err
	}
	for _, v := range vars {
		if err := a.store.Set(v); err != nil {
			return fmt.Errorf("snmpsim: %w", err)
		}
	}
	return nil
}
