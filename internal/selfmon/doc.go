// Package selfmon lets the emberwatch daemons report their own health: to
// systemd (readiness, status line, a progress-fed watchdog) and to
// Prometheus (counters, gauges and histograms on a private registry).
//
// # systemd notify
//
// A service started with Type=notify gets $NOTIFY_SOCKET, a unix datagram
// socket (a path, or an abstract name written with a leading '@'). The
// protocol (sd_notify(3)) is newline-separated KEY=VALUE assignments, one
// datagram per notification. [Notifier] speaks it with the standard library
// only: no cgo, no go-systemd. A nil *Notifier, which [NewNotifier] returns
// when the variable is unset, is a valid no-op so that the daemons run the
// same code under systemd, in a terminal and in tests.
//
// # Watchdog fed by progress
//
// With WatchdogSec= systemd sets $WATCHDOG_USEC (and $WATCHDOG_PID) and kills
// the service when no WATCHDOG=1 arrives within that time. A blind ticker
// would keep a service with a stuck sampling loop alive forever, which is
// exactly the failure the watchdog exists for (reliability-security T22).
// So [Watchdog] pings only when the pipeline called [Watchdog.Progress] since
// the previous ping: the sampling loop calls it after every completed round
// (a round whose points all faulted still completed; a loop blocked in a
// driver does not). Pings go out every interval/2, as sd_watchdog_enabled(3)
// recommends, so one slow round does not get the service killed. With one
// goroutine per link, a single hung link would hide behind the others'
// progress, so each loop can register a [Watchdog.Source] with its own
// allowance (longer for slow periods); pings then need every source fresh,
// and the STATUS= line names the one that hung.
//
// # Metrics
//
// [Metrics] holds the agent's counters in its own instance (no global
// state, so tests and several instances in one process do not collide)
// and serves them in the Prometheus text format with [Metrics.Handler],
// written by hand: the Prometheus client library would add about 5 MiB to
// the agent's arm64 binary, whose budget is 12 MiB. Hot paths
// use pre-curried children: [Metrics.Device] returns a [DeviceMetrics]
// whose counters are resolved once per device, so counting a round is an
// atomic add without label look-ups or allocations.
//
// # Tests
//
// Notifier and Watchdog tests read from a real unixgram socket in
// t.TempDir() (and an abstract one). Metrics tests scrape the handler with
// httptest. natsauth_test.go starts in-process nats-servers from the
// repository's deploy/nats/{accounts,cluster,leaf} files and proves the
// subject permissions hold.
package selfmon
