package chaos

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/emberwatch/emberwatch/internal/hooks"
	"github.com/emberwatch/emberwatch/internal/wire"
)

// The T12 fuzz targets that no other package has: the SNMP packet decoder
// the driver relies on, the telemetry line parser, and the evacuation
// verifier. Their seeds run with `make chaos`; fuzz with e.g.
// go test -run '^$' -fuzz FuzzAttackT12GoSNMPDecode -fuzztime 10m ./internal/chaos/
// (crashers land in testdata/fuzz and become regression tests).

// snmpSeeds are responses as a UPS card sends them.
func snmpSeeds(f *testing.F) {
	vbs := []gosnmp.SnmpPDU{
		{Name: ".1.3.6.1.2.1.33.1.2.4.0", Type: gosnmp.Integer, Value: 97},
		{Name: ".1.3.6.1.2.1.33.1.1.2.0", Type: gosnmp.OctetString, Value: []byte("UPS-3000 Li-ion")},
		{Name: ".1.3.6.1.2.1.33.1.2.3.0", Type: gosnmp.TimeTicks, Value: uint32(4200)},
		{Name: ".1.3.6.1.2.1.2.2.1.10.1", Type: gosnmp.Counter32, Value: uint(123456)},
		{Name: ".1.3.6.1.2.1.31.1.1.1.6.1", Type: gosnmp.Counter64, Value: uint64(1) << 40},
		{Name: ".1.3.6.1.2.1.33.1.9.1.0", Type: gosnmp.NoSuchObject},
		{Name: ".1.3.6.1.2.1.33.1.9.2.0", Type: gosnmp.NoSuchInstance},
		{Name: ".1.3.6.1.4.1.318.1.1.1.2.3.1.0", Type: gosnmp.Gauge32, Value: uint(970)},
	}
	for _, v := range []gosnmp.SnmpVersion{gosnmp.Version1, gosnmp.Version2c} {
		for _, pt := range []gosnmp.PDUType{gosnmp.GetResponse, gosnmp.Report, gosnmp.SNMPv2Trap} {
			p := &gosnmp.SnmpPacket{Version: v, Community: "public", PDUType: pt, RequestID: 7, Variables: vbs}
			if b, err := p.MarshalMsg(); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff}) // huge length
	f.Add([]byte{0x30, 0x03, 0x02, 0x01})             // truncated
}

// FuzzAttackT12GoSNMPDecode: no input panics gosnmp's decoder or takes a
// second (gosnmp's own bound).
func FuzzAttackT12GoSNMPDecode(f *testing.F) {
	snmpSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []gosnmp.SnmpVersion{gosnmp.Version2c, gosnmp.Version3} {
			g := &gosnmp.GoSNMP{Version: v, Community: "public", Logger: gosnmp.NewLogger(nil)}
			if v == gosnmp.Version3 {
				g.SecurityModel = gosnmp.UserSecurityModel
				g.MsgFlags = gosnmp.AuthPriv
				g.SecurityParameters = &gosnmp.UsmSecurityParameters{UserName: "upsadmin",
					AuthenticationProtocol: gosnmp.SHA256, AuthenticationPassphrase: "authpass123",
					PrivacyProtocol: gosnmp.AES, PrivacyPassphrase: "privpass123"}
			}
			start := time.Now()
			g.SnmpDecodePacket(b)
			if d := time.Since(start); d > time.Second {
				t.Fatalf("v%v decode took %v", v, d)
			}
		}
	})
}

// FuzzAttackT12TelemetryLines: the line parser the collector's checks and
// the tests share never panics and is fast.
func FuzzAttackT12TelemetryLines(f *testing.F) {
	f.Add([]byte("ember,site=s,agent=a,device=d,component=string/1/module/3/cell/7 voltage.volts=3.91,temperature.celsius=25.1 1763780000000000000"))
	f.Add([]byte("ember,site=s,agent=a,device=d voltage.volts.fault=\"timeout\" 1"))
	f.Add([]byte("ember,site=s\\,x,agent=a v=\"a\\\"b\" 1\nember v=1i\n\n"))
	f.Add([]byte("ember v="))
	f.Fuzz(func(t *testing.T, b []byte) {
		start := time.Now()
		wire.ParseLines(b)
		if d := time.Since(start); d > 100*time.Millisecond && len(b) < 1<<16 {
			t.Fatalf("%d bytes took %v", len(b), d)
		}
	})
}

// FuzzAttackT12EvacVerifier: no input panics the evacuation verifier, and
// nothing but the seed signed by the trusted key is ever accepted.
func FuzzAttackT12EvacVerifier(f *testing.F) {
	_, ctl := userKey(f)
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	ev := wire.Evacuation{ID: "ev-1", Site: "chaos", Domain: "ups-1", Phase: wire.PhaseEvacuate, Targets: []string{"host-a"}, Time: now, Fence: 3}
	if err := ctl.Sign(&ev); err != nil {
		f.Fatal(err)
	}
	genuine, _ := json.Marshal(&ev)
	f.Add(genuine)
	f.Add([]byte(`{"id":"x","signature":"AAAA","issuer":"` + ctl.PublicKey() + `"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := hooks.NewVerifier([]string{ctl.PublicKey()}, 30*time.Second, func() time.Time { return now })
		got, err := v.Verify(b)
		if err != nil {
			return
		}
		// Accepted: it must be the genuine message, possibly re-encoded
		// (JSON allows whitespace and key order changes), not altered.
		if got.ID != ev.ID || got.Site != ev.Site || got.Urgency != ev.Urgency || got.Drill != ev.Drill || got.Domain != ev.Domain || got.Phase != ev.Phase || got.Fence != ev.Fence ||
			len(got.Targets) != 1 || got.Targets[0] != "host-a" || !got.Time.Equal(ev.Time) || got.DryRun != ev.DryRun {
			t.Fatalf("accepted an altered evacuation: %+v", got)
		}
	})
}
