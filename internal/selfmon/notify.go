package selfmon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends sd_notify(3) messages to the service manager. The zero of
// *Notifier (nil) does nothing, so callers need no "under systemd?" checks.
// Methods are safe for concurrent use: each message is one datagram on a
// fresh socket, like sd_notify does, so a systemd re-exec that recreates
// the notify socket cannot leave the daemon with a dead connection.
type Notifier struct {
	addr *net.UnixAddr
}

// NewNotifier returns a Notifier for $NOTIFY_SOCKET, or nil (a no-op
// notifier) when the variable is unset or empty. It fails only for a value
// that cannot be a unix socket address.
func NewNotifier() (*Notifier, error) {
	return NotifierAt(os.Getenv("NOTIFY_SOCKET"))
}

// NotifierAt returns a Notifier for a socket path, or for an abstract
// socket given as "@name". An empty socket gives a nil (no-op) Notifier.
func NotifierAt(socket string) (*Notifier, error) {
	if socket == "" {
		return nil, nil
	}
	// systemd uses only absolute paths and abstract names; anything else is
	// a mangled environment, better reported than silently ignored.
	if socket[0] != '/' && socket[0] != '@' {
		return nil, fmt.Errorf("selfmon: NOTIFY_SOCKET %q: want an absolute path or an @abstract name", socket)
	}
	if len(socket) > 107 { // sizeof(sun_path) - 1
		return nil, fmt.Errorf("selfmon: NOTIFY_SOCKET %q: longer than 107 bytes", socket)
	}
	// Go maps a leading '@' to the abstract namespace (a leading NUL byte)
	// on Linux, which is what systemd means by it.
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
}

// Socket returns the socket the notifier writes to ("" for a no-op one).
func (n *Notifier) Socket() string {
	if n == nil {
		return ""
	}
	return n.addr.Name
}

// Notify sends the assignments (e.g. "READY=1", "STATUS=polling 4
// devices") as one datagram. Assignments must not contain newlines.
func (n *Notifier) Notify(assignments ...string) error {
	if n == nil || len(assignments) == 0 {
		return nil
	}
	for _, a := range assignments {
		if strings.ContainsRune(a, '\n') || !strings.ContainsRune(a, '=') {
			return fmt.Errorf("selfmon: notify %q: want one KEY=VALUE line", a)
		}
	}
	msg := strings.Join(assignments, "\n")
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("selfmon: notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	// A datagram socket never blocks long, but a wedged receiver must not
	// hang the pipeline goroutine that feeds the watchdog.
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("selfmon: notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// Ready tells systemd that start-up is finished (READY=1), with a status
// line. A Type=notify unit counts as started only after this.
func (n *Notifier) Ready(status string) error {
	if status == "" {
		return n.Notify("READY=1")
	}
	return n.Notify("READY=1", "STATUS="+oneLine(status))
}

// Status sets the free-form status line shown by systemctl status.
func (n *Notifier) Status(status string) error { return n.Notify("STATUS=" + oneLine(status)) }

// Watchdog sends one keep-alive (WATCHDOG=1). Prefer [Watchdog], which
// sends it only while the pipeline makes progress.
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// Stopping tells systemd that shutdown has begun (STOPPING=1), so a slow
// flush is not mistaken for a hang.
func (n *Notifier) Stopping(status string) error {
	if status == "" {
		return n.Notify("STOPPING=1")
	}
	return n.Notify("STOPPING=1", "STATUS="+oneLine(status))
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// WatchdogInterval returns the watchdog timeout systemd expects this
// process to honour, from $WATCHDOG_USEC, or 0 when the watchdog is off
// or meant for another process ($WATCHDOG_PID names a different PID, as
// happens to children that inherited the environment).
func WatchdogInterval() (time.Duration, error) {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

var errWatchdogEnv = errors.New("selfmon: bad watchdog environment")

func watchdogInterval(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p <= 0 {
			return 0, fmt.Errorf("%w: WATCHDOG_PID=%q: not a process id", errWatchdogEnv, pid)
		}
		if p != self {
			return 0, nil
		}
	}
	us, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || us == 0 {
		return 0, fmt.Errorf("%w: WATCHDOG_USEC=%q: want a positive number of microseconds", errWatchdogEnv, usec)
	}
	return time.Duration(us) * time.Microsecond, nil
}
