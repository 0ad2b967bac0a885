package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// Exec runs a program with the evacuation JSON on stdin. It never involves
// a shell: Argv[0] is executed directly.
type Exec struct {
	Argv    []string
	Env     map[string]string
	Timeout time.Duration
	Log     *slog.Logger
}

// passEnv are the variables of our own environment an exec hook inherits;
// everything else (credentials, tokens) stays out of the hook.
var passEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "KUBECONFIG", "TMPDIR"}

func boolEnv(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Run runs the program once. On timeout or cancellation the whole process
// group is killed, children included.
func (e *Exec) Run(ctx context.Context, ev *wire.Evacuation, body []byte) error {
	if e.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, e.Argv[0], e.Argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Negative pid: the whole group, so forked children die too.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A grandchild that escaped the group could keep our pipes open; do
	// not wait for it longer than this.
	cmd.WaitDelay = time.Second
	cmd.Stdin = bytes.NewReader(body)
	var env []string
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range e.Env {
		env = append(env, k+"="+v)
	}
	env = append(env,
		"EMBER_EVAC_ID="+ev.ID,
		"EMBER_PHASE="+ev.Phase,
		"EMBER_DOMAIN="+ev.Domain,
		"EMBER_SITE="+ev.Site,
		"EMBER_URGENCY="+ev.Urgency,
		"EMBER_DRILL="+boolEnv(ev.Drill),
		"EMBER_DRY_RUN="+boolEnv(ev.DryRun),
		"EMBER_TARGETS_COUNT="+strconv.Itoa(len(ev.Targets)),
	)
	cmd.Env = env
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if e.Log != nil {
		e.Log.Debug("exec hook finished", "argv0", e.Argv[0], "evac", ev.ID, "phase", ev.Phase,
			"duration_ms", time.Since(start).Milliseconds(), "err", err, "output", out.String())
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("exec %s: killed process group after %v: %w", e.Argv[0], time.Since(start).Round(time.Millisecond), ctx.Err())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("exec %s: exit status %d: %s", e.Argv[0], ee.ExitCode(), out.String())
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return Permanent(fmt.Errorf("exec %s: %w", e.Argv[0], err))
		}
		return fmt.Errorf("exec %s: %w", e.Argv[0], err)
	}
	return nil
}

// tailBuffer keeps the last 4 KiB of a hook's output for error messages.
type tailBuffer struct{ b []byte }

const tailMax = 4096

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = append(t.b[:0], t.b[len(t.b)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(bytes.TrimSpace(t.b)) }
