package agent

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// clockSynced asks the kernel whether NTP (or PTP) keeps the wall clock
// synchronised. Samples from a box whose clock is not synchronised are
// flagged in its heartbeat, so that the collector and investigators know
// their timestamps may be off. nil when the kernel cannot say.
func (a *Agent) clockSynced() *bool {
	if a.opts.ClockSynced != nil {
		v := a.opts.ClockSynced()
		return &v
	}
	if runtime.GOOS != "linux" {
		return nil
	}
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return nil
	}
	synced := state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
	return &synced
}
