package hooks

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// Hook types.
const (
	TypeExec    = "exec"
	TypeWebhook = "webhook"
	TypeNATS    = "nats"
)

// Dry-run modes of a hook.
const (
	DryRunRun  = "run"  // run the hook with dry_run: true / EMBER_DRY_RUN=1 (default)
	DryRunSkip = "skip" // do not run the hook at all for dry-run evacuations
)

// Spec configures one hook (YAML, in the collector's and the agent's
// configuration files).
type Spec struct {
	// Name identifies the hook in the ledger and the audit; [a-z0-9_-]+.
	Name string `yaml:"name" json:"name"`
	// Type is exec, webhook or nats; when empty it is inferred from which
	// of command/exec, url or subject is set.
	Type string `yaml:"type,omitempty" json:"type"`
	// Phases the hook runs for; empty means every phase.
	Phases []string `yaml:"phases,omitempty" json:"phases,omitempty"`
	// Command is the argv of an exec hook; no shell is involved.
	Command []string `yaml:"command,omitempty" json:"command,omitempty"`
	// Exec is an alias of Command (the agent configuration's spelling).
	Exec []string `yaml:"exec,omitempty" json:"-"`
	// Env adds variables to an exec hook's environment.
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// URL of a webhook.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Secret signs webhooks: literal, ${ENV_VAR} or file:/path.
	Secret string `yaml:"secret,omitempty" json:"-"`
	// Subject of a NATS request hook.
	Subject string `yaml:"subject,omitempty" json:"subject,omitempty"`
	// Timeout of one attempt. Defaults to 30s.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Retries is the number of extra attempts after a failure. Defaults to
	// 2; -1 means none.
	Retries int `yaml:"retries,omitempty" json:"retries,omitempty"`
	// DryRun is "run" (default) or "skip".
	DryRun string `yaml:"dry_run,omitempty" json:"dry_run,omitempty"`
	// RerunInDoubt lets a new leader run the hook again when an earlier
	// attempt was claimed but never finished. Only for idempotent hooks.
	RerunInDoubt bool `yaml:"rerun_in_doubt,omitempty" json:"rerun_in_doubt,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// DefaultTimeout is the per-attempt timeout when Spec.Timeout is zero.
const DefaultTimeout = 30 * time.Second

func (s *Spec) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

func (s *Spec) retries() int {
	switch {
	case s.Retries < 0:
		return 0
	case s.Retries == 0:
		return 2
	}
	return s.Retries
}

// RunsFor reports whether the hook runs for a phase.
func (s *Spec) RunsFor(phase string) bool {
	if len(s.Phases) == 0 {
		return true
	}
	for _, p := range s.Phases {
		if p == phase {
			return true
		}
	}
	return false
}

// Normalize fills Type and Command from the aliases.
func (s *Spec) Normalize() {
	if len(s.Command) == 0 {
		s.Command = s.Exec
	}
	if s.Type != "" {
		return
	}
	switch {
	case len(s.Command) > 0 && s.URL == "" && s.Subject == "":
		s.Type = TypeExec
	case s.URL != "" && len(s.Command) == 0 && s.Subject == "":
		s.Type = TypeWebhook
	case s.Subject != "" && len(s.Command) == 0 && s.URL == "":
		s.Type = TypeNATS
	}
}

// Problem is one configuration error of a hook; Key is relative to the
// hook ("command", "url"...). Callers that know the file and line prefix it.
type Problem struct {
	Index int
	Key   string
	Msg   string
}

func (p Problem) Error() string { return fmt.Sprintf("hooks[%d].%s: %s", p.Index, p.Key, p.Msg) }

// Validate checks a list of hooks and returns every problem found.
func Validate(specs []Spec) []Problem {
	var out []Problem
	seen := map[string]bool{}
	add := func(i int, k, f string, a ...any) { out = append(out, Problem{i, k, fmt.Sprintf(f, a...)}) }
	for i, s := range specs {
		s.Normalize()
		if !nameRE.MatchString(s.Name) {
			add(i, "name", "must match [a-z0-9_-]+, got %q", s.Name)
		} else if seen[s.Name] {
			add(i, "name", "duplicate hook name %q", s.Name)
		}
		seen[s.Name] = true
		for _, p := range s.Phases {
			switch p {
			case wire.PhasePrestage, wire.PhaseEvacuate, wire.PhaseAbort, wire.PhaseComplete:
			default:
				add(i, "phases", "unknown phase %q (want prestage, evacuate, abort or complete)", p)
			}
		}
		switch s.DryRun {
		case "", DryRunRun, DryRunSkip:
		default:
			add(i, "dry_run", "want run or skip, got %q", s.DryRun)
		}
		if s.Timeout < 0 {
			add(i, "timeout", "must not be negative")
		}
		switch s.Type {
		case TypeExec:
			if len(s.Command) == 0 || s.Command[0] == "" {
				add(i, "command", "exec hook needs a command (argv list)")
			} else if s.Command[0] == "sh" || s.Command[0] == "/bin/sh" || s.Command[0] == "bash" || s.Command[0] == "/bin/bash" {
				if len(s.Command) > 1 && s.Command[1] == "-c" {
					add(i, "command", "exec hooks take argv, not a shell command line (%q -c)", s.Command[0])
				}
			}
		case TypeWebhook:
			if !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://") {
				add(i, "url", "webhook needs an http:// or https:// url, got %q", s.URL)
			}
			if s.Secret == "" {
				add(i, "secret", "webhook needs a signing secret")
			} else if _, err := ResolveSecret(s.Secret); err != nil {
				add(i, "secret", "%v", err)
			}
		case TypeNATS:
			if s.Subject == "" || strings.ContainsAny(s.Subject, " *>") {
				add(i, "subject", "nats hook needs a literal subject, got %q", s.Subject)
			}
		case "":
			add(i, "type", "set exactly one of command (exec), url (webhook) or subject (nats)")
		default:
			add(i, "type", "want exec, webhook or nats, got %q", s.Type)
		}
	}
	return out
}

// ResolveSecret returns a secret given literally, as ${ENV_VAR} or as
// file:/path (trailing newline trimmed).
func ResolveSecret(s string) ([]byte, error) {
	switch {
	case strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}"):
		name := s[2 : len(s)-1]
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return nil, fmt.Errorf("environment variable %s is not set", name)
		}
		return []byte(v), nil
	case strings.HasPrefix(s, "file:"):
		b, err := os.ReadFile(strings.TrimPrefix(s, "file:"))
		if err != nil {
			return nil, fmt.Errorf("read secret: %w", err)
		}
		b = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(b) == 0 {
			return nil, errors.New("secret file is empty")
		}
		return b, nil
	}
	return []byte(s), nil
}
