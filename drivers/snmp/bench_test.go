package snmp_test

import (
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers"
	"github.com/emberwatch/emberwatch/drivers/snmp"
	"github.com/emberwatch/emberwatch/internal/sim/snmpsim"
	"github.com/emberwatch/emberwatch/internal/testenv"
	"github.com/gosnmp/gosnmp"
)

// BenchmarkPollUPSMIB is one Poll of the ups-mib profile against Debian
// snmpd + upspass. It reports the requests per round next to the number
// of fields, which is what a one-Get-per-field poller would send.
func BenchmarkPollUPSMIB(b *testing.B) {
	s := testenv.StartSNMPD(b, testenv.SNMPDOptions{})
	perField := v2c(s)
	perField.MaxOIDs = 1 // one Get per field: the baseline packing beats
	for _, tc := range []struct {
		name string
		cfg  snmp.Config
	}{{"v2c", v2c(s)}, {"v3", v3(s)}, {"v2c-one-oid-per-get", perField}} {
		b.Run(tc.name, func(b *testing.B) {
			p, err := snmp.NewPollerContext(b.Context(), tc.cfg, loadProfile(b, "ups-mib"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			out := make([]drivers.Reading, len(p.Points()))
			if err := p.Poll(b.Context(), out); err != nil { // absent objects learnt
				b.Fatal(err)
			}
			good := 0
			for _, r := range out {
				if r.OK() {
					good++
				}
			}
			start := p.Requests()
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Poll(b.Context(), out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(p.Requests()-start)/float64(b.N), "requests/round")
			b.ReportMetric(float64(good), "fields")
		})
	}
}

// BenchmarkTrapDelivery is gosnmp SendTrap (v2c) -> TrapReceiver callback
// on loopback.
func BenchmarkTrapDelivery(b *testing.B) {
	port, events := startReceiver(b, nil)
	g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(port), Version: gosnmp.Version2c,
		Community: "public", Timeout: time.Second}
	if err := g.Connect(); err != nil {
		b.Fatal(err)
	}
	defer g.Conn.Close()
	trap := gosnmp.SnmpTrap{Variables: []gosnmp.SnmpPDU{
		{Name: ".1.3.6.1.6.3.1.1.4.1.0", Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.2.1.33.2.1"},
		{Name: ".1.3.6.1.2.1.33.1.2.2.0", Type: gosnmp.Integer, Value: 40},
	}}
	var worst time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := g.SendTrap(trap); err != nil {
			b.Fatal(err)
		}
		select {
		case ev := <-events:
			if ev.Name != "upsTrapOnBattery" {
				b.Fatalf("got %+v", ev)
			}
		case <-time.After(2 * time.Second):
			b.Fatal("trap lost")
		}
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
}

// BenchmarkPollSim is one ups-mib Poll against the in-process snmpsim
// agent: the driver's own cost without snmpd's pass_persist round trips.
func BenchmarkPollSim(b *testing.B) {
	prof := loadProfile(b, "ups-mib")
	vars, err := snmpsim.FromProfile(prof, snmpsim.ProfileOptions{Rows: map[string]int{"line": 3}})
	if err != nil {
		b.Fatal(err)
	}
	a, err := snmpsim.Serve(b.Context(), "127.0.0.1:0", vars, snmpsim.Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	p, err := snmp.NewPollerContext(b.Context(), simConfig(a, "2c"), prof, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	out := make([]drivers.Reading, len(p.Points()))
	start := p.Requests()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Poll(b.Context(), out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(p.Requests()-start)/float64(b.N), "requests/round")
	b.ReportMetric(float64(len(out)), "points")
}
