package main

import (
	"bytes"
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/emberwatch/emberwatch/drivers/modbus/modbustest"
	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
	"github.com/emberwatch/emberwatch/internal/sim/snmpsim"
	"github.com/emberwatch/emberwatch/internal/testenv"
)

func runProbe(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := cmdProbe(t.Context(), args, &out, &errb); err != nil {
		t.Fatalf("probe %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errb.String())
	}
	return out.String()
}

func wantLines(t *testing.T, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestProbeSNMPRecording(t *testing.T) {
	vars, err := snmpsim.LoadFile("../../internal/sim/snmpsim/testdata/eaton-93e-80.snmprec")
	if err != nil {
		t.Fatal(err)
	}
	a, err := snmpsim.Serve(t.Context(), "127.0.0.1:0", vars, snmpsim.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	out := runProbe(t, "snmp://127.0.0.1:"+strconv.Itoa(a.Addr().Port)+"?version=2c&community=public")
	wantLines(t, out,
		"sysObjectID", "1.3.6.1.4.1.705.1",
		"eaton-xups", "ups-mib",
		"read once with eaton-xups",
		"battery.voltage.volts", "521 V",
		"battery.runtime.seconds", "FAULT sentinel",
		"ups.output.source", "normal (3)")
	// The generic profile on request.
	out = runProbe(t, "-profile", "ups-mib", "snmp://127.0.0.1:"+strconv.Itoa(a.Addr().Port))
	wantLines(t, out, "read once with ups-mib", "battery.runtime.seconds", "65520 s")
}

func TestProbeSNMPv3(t *testing.T) {
	s := testenv.StartSNMPD(t, testenv.SNMPDOptions{})
	u := "snmp://" + s.User + "@" + s.Addr() + "?version=3&auth=" + url.QueryEscape(s.AuthProto) +
		"&authpass=" + s.AuthPass + "&priv=" + s.PrivProto + "&privpass=" + s.PrivPass
	out := runProbe(t, u)
	wantLines(t, out, "Emberwatch Test", "ups-mib", "battery.charge.percent", "97 %", "ups.input[1].voltage.volts", "230 V")
	// A wrong passphrase is an error naming the device.
	var o, e bytes.Buffer
	err := cmdProbe(context.Background(), []string{strings.Replace(u, "authpass="+s.AuthPass, "authpass=wrongpass1", 1)}, &o, &e)
	if err == nil || !strings.Contains(err.Error(), s.Addr()) || !strings.Contains(err.Error(), "authentication") {
		t.Errorf("wrong passphrase: %v", err)
	}
}

// sunspecImage writes a SunSpec chain: common model 1 and an empty 802.
func sunspecImage(s *modbustest.Server) {
	str := func(txt string, n int) []uint16 {
		b := make([]byte, 2*n)
		copy(b, txt)
		r := make([]uint16, n)
		for i := range r {
			r[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
		return r
	}
	common := []uint16{1, 66}
	common = append(common, str("Emberwatch", 16)...)
	common = append(common, str("Test BMS", 16)...)
	common = append(common, str("", 8)...)
	common = append(common, str("1.2.3", 8)...)
	common = append(common, str("SN42", 16)...)
	common = append(common, 1, 0)
	regs := append([]uint16{0x5375, 0x6e53}, common...)
	regs = append(regs, 802, 62)
	regs = append(regs, make([]uint16, 62)...)
	regs = append(regs, 0xffff, 0)
	s.Set(1, modbustest.Holding, 40000, regs...)
}

func TestProbeModbusSunSpec(t *testing.T) {
	s := modbustest.NewServer(t)
	sunspecImage(s)
	u, _ := url.Parse(s.URL)
	out := runProbe(t, "modbus://"+u.Host+"?unit=1")
	wantLines(t, out, "Emberwatch", "Test BMS", "SN42", "sunspec.models", "1,802", "sunspec ", "read once with sunspec")
}

func TestProbeModbusOrders(t *testing.T) {
	s := modbustest.NewServer(t)
	s.Set(1, modbustest.Holding, 128, 0x0000, 0x0e10) // battery.runtime.seconds = 3600, high word first
	u, _ := url.Parse(s.URL)
	out := runProbe(t, "-timeout", "300ms", "-profile", "apc-smart-ups-modbus", "-orders", "battery.runtime.seconds", "modbus://"+u.Host+"?unit=1")
	wantLines(t, out, "read once with apc-smart-ups-modbus", "raw registers at 128: [0000 0e10]",
		"big     big     3600 s       true", "little  big     235929600 s  false")
}

func TestProbeSNMPAPCLiIon(t *testing.T) {
	set, err := loadProbeProfiles(t)
	if err != nil {
		t.Fatal(err)
	}
	prof, _ := set.Get("apc-powernet")
	vars, err := snmpsim.FromProfile(prof, snmpsim.ProfileOptions{SysObjectID: "1.3.6.1.4.1.318.1.3.27",
		Texts:  map[string]string{"ups.identity.model": "Galaxy VS 100kW"},
		Values: map[string]float64{"battery.chemistry": 4, "string[1].module[2].cell[3].temperature.celsius": 47.5},
		Rows:   map[string]int{"string": 1, "module": 2, "cell": 3}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := snmpsim.Serve(t.Context(), "127.0.0.1:0", vars, snmpsim.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	out := runProbe(t, "snmp://127.0.0.1:"+strconv.Itoa(a.Addr().Port))
	wantLines(t, out, "Galaxy VS 100kW", "read once with apc-powernet", "battery.chemistry", "li_ion (4)",
		"string[1].module[2].cell[3].temperature.celsius", "47.5 degC")
	if strings.Contains(out, "eaton-xups") || strings.Contains(out, "liebert-gp") {
		t.Errorf("other vendors proposed:\n%s", out)
	}
}

func loadProbeProfiles(t *testing.T) (*profile.Set, error) {
	t.Helper()
	return profile.Load(nil, firmwareprofiles.FS)
}
