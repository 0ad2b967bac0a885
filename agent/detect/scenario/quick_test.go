package scenario

import (
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/agent/detect"
	"github.com/emberwatch/emberwatch/internal/wire"
)

func TestQuick(t *testing.T) {
	for _, s := range All() {
		for _, p := range []time.Duration{500 * time.Millisecond, 5 * time.Second, 10 * time.Second} {
			var log []string
			res := Evaluate(s, Options{Period: p, Seed: 1}, detect.DefaultConfig(s.Chemistry), func(a wire.Alert) {
				if len(log) < 40 {
					log = append(log, a.SampleTime.Format("15:04:05")+" "+a.Summary)
				}
			})
			t.Logf("%s %v pass=%v why=%s W=%v C=%v E=%v conv=%v", s.Name, p, res.Pass, res.Why, res.Warning, res.Critical, res.Emergency, res.Conventional)
			for _, l := range log {
				t.Log("   ", l)
			}
		}
	}
}
