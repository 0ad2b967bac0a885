// Command upspass is an snmpd pass_persist backend serving a fake RFC 1628
// UPS-MIB (1.3.6.1.2.1.33) for tests and the demo.
//
// snmpd starts it once (`pass_persist .1.3.6.1.2.1.33 /path/upspass`) and
// talks a line protocol on stdin/stdout: PING, get, getnext, set. The table
// is sorted by OID so that getnext walks it in order.
//
// Fault scenarios: on every request it checks the JSON file named by
// $UPS_STATE (if set) and, when it changed, overlays it on the defaults. Keys are OIDs
// relative to upsObjects (1.3.6.1.2.1.33.1), e.g. "2.1.0", or absolute
// (starting with "1." or "."). Values: a number (INTEGER), a string
// (OCTET STRING), null (the object disappears), or {"type": "timeticks",
// "value": 123} with a pass_persist type (integer, gauge, counter,
// timeticks, string, objectid, counter64).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

const root = "1.3.6.1.2.1.33.1."

type value struct {
	typ string // pass_persist type word
	val string
}

// defaults is a healthy 3 kVA single-phase UPS on utility power.
func defaults() map[string]value {
	i := func(n int) value { return value{"integer", strconv.Itoa(n)} }
	g := func(n int) value { return value{"gauge", strconv.Itoa(n)} }
	s := func(t string) value { return value{"string", t} }
	return map[string]value{
		"1.1.0":     s("Emberwatch Test"),  // upsIdentManufacturer
		"1.2.0":     s("UPS-3000 Li-ion"),  // upsIdentModel
		"1.3.0":     s("FW 2.4.1"),         // upsIdentUPSSoftwareVersion
		"1.4.0":     s("upspass 1"),        // upsIdentAgentSoftwareVersion
		"1.5.0":     s("ups-test-1"),       // upsIdentName
		"2.1.0":     i(2),                  // upsBatteryStatus: batteryNormal
		"2.2.0":     i(0),                  // upsSecondsOnBattery
		"2.3.0":     i(42),                 // upsEstimatedMinutesRemaining
		"2.4.0":     i(97),                 // upsEstimatedChargeRemaining
		"2.5.0":     i(545),                // upsBatteryVoltage, 0.1 V
		"2.6.0":     i(-12),                // upsBatteryCurrent, 0.1 A
		"2.7.0":     i(27),                 // upsBatteryTemperature
		"3.1.0":     value{"counter", "3"}, // upsInputLineBads
		"3.2.0":     i(1),                  // upsInputNumLines
		"3.3.1.1.1": i(1),                  // upsInputLineIndex
		"3.3.1.2.1": i(500),                // upsInputFrequency, 0.1 Hz
		"3.3.1.3.1": i(230),                // upsInputVoltage
		"3.3.1.4.1": i(87),                 // upsInputCurrent, 0.1 A
		"3.3.1.5.1": i(1900),               // upsInputTruePower
		"4.1.0":     i(3),                  // upsOutputSource: normal
		"4.2.0":     i(500),                // upsOutputFrequency
		"4.3.0":     i(1),                  // upsOutputNumLines
		"4.4.1.1.1": i(1),
		"4.4.1.2.1": i(230), // upsOutputVoltage
		"4.4.1.3.1": i(78),  // upsOutputCurrent, 0.1 A
		"4.4.1.4.1": i(1750),
		"4.4.1.5.1": i(61), // upsOutputPercentLoad
		"6.1.0":     g(0),  // upsAlarmsPresent
		"7.3.0":     i(6),  // upsTestResultsSummary: noTestsInitiated
		"9.5.0":     i(3000),
		"9.6.0":     i(2700),
	}
}

type entry struct {
	oid []uint32
	key string
	v   value
}

func parseOID(s string) ([]uint32, error) {
	s = strings.TrimPrefix(s, ".")
	parts := strings.Split(s, ".")
	out := make([]uint32, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad OID %q", s)
		}
		out[i] = uint32(n)
	}
	return out, nil
}

func less(a, b []uint32) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// load builds the sorted table: defaults plus the override file.
func load(stateFile string) ([]entry, error) {
	m := map[string]value{}
	for k, v := range defaults() {
		m[root+k] = v
	}
	if stateFile != "" {
		b, err := os.ReadFile(stateFile)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		if len(b) > 0 {
			var over map[string]json.RawMessage
			if err := json.Unmarshal(b, &over); err != nil {
				return nil, fmt.Errorf("%s: %w", stateFile, err)
			}
			for k, raw := range over {
				full := strings.TrimPrefix(k, ".")
				if !strings.HasPrefix(full, "1.") {
					full = root + full
				}
				var x any
				if err := json.Unmarshal(raw, &x); err != nil {
					return nil, fmt.Errorf("%s: %s: %w", stateFile, k, err)
				}
				switch t := x.(type) {
				case nil:
					delete(m, full)
				case float64:
					m[full] = value{"integer", strconv.FormatInt(int64(t), 10)}
				case string:
					m[full] = value{"string", t}
				case map[string]any:
					typ, _ := t["type"].(string)
					m[full] = value{typ, fmt.Sprint(t["value"])}
					if f, ok := t["value"].(float64); ok {
						m[full] = value{typ, strconv.FormatFloat(f, 'f', -1, 64)}
					}
				default:
					return nil, fmt.Errorf("%s: %s: unsupported value %v", stateFile, k, x)
				}
			}
		}
	}
	out := make([]entry, 0, len(m))
	for k, v := range m {
		o, err := parseOID(k)
		if err != nil {
			return nil, err
		}
		out = append(out, entry{o, "." + k, v})
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i].oid, out[j].oid) })
	return out, nil
}

func main() {
	if err := serve(os.Stdin, os.Stdout, os.Getenv("UPS_STATE")); err != nil {
		fmt.Fprintln(os.Stderr, "upspass:", err)
		os.Exit(1)
	}
}

// cache keeps the table until the state file changes (size or mtime), so
// that a walk does not re-read and re-sort it for every OID.
type cache struct {
	file string
	key  string
	tab  []entry
}

func (c *cache) get() ([]entry, error) {
	key := "none"
	if c.file != "" {
		if st, err := os.Stat(c.file); err == nil {
			key = fmt.Sprint(st.Size(), st.ModTime().UnixNano())
		}
	}
	if c.tab != nil && key == c.key {
		return c.tab, nil
	}
	tab, err := load(c.file)
	if err != nil {
		return nil, err
	}
	c.tab, c.key = tab, key
	return tab, nil
}

func serve(r io.Reader, w io.Writer, stateFile string) error {
	tables := &cache{file: stateFile}
	in := bufio.NewScanner(r)
	out := bufio.NewWriter(w)
	reply := func(lines ...string) error {
		for _, l := range lines {
			out.WriteString(l)
			out.WriteByte('\n')
		}
		return out.Flush()
	}
	for in.Scan() {
		cmd := strings.TrimSpace(in.Text())
		switch strings.ToLower(cmd) {
		case "":
			return nil // snmpd closes with an empty line
		case "ping":
			if err := reply("PONG"); err != nil {
				return err
			}
		case "get", "getnext":
			if !in.Scan() {
				return in.Err()
			}
			req, err := parseOID(strings.TrimSpace(in.Text()))
			if err != nil {
				reply("NONE")
				continue
			}
			tab, err := tables.get()
			if err != nil {
				fmt.Fprintln(os.Stderr, "upspass:", err)
				reply("NONE")
				continue
			}
			var hit *entry
			for i := range tab {
				e := &tab[i]
				if cmd == "get" && !less(e.oid, req) && !less(req, e.oid) {
					hit = e
					break
				}
				if strings.EqualFold(cmd, "getnext") && less(req, e.oid) {
					hit = e
					break
				}
			}
			if hit == nil {
				err = reply("NONE")
			} else {
				err = reply(hit.key, hit.v.typ, hit.v.val)
			}
			if err != nil {
				return err
			}
		case "set":
			in.Scan()
			in.Scan()
			if err := reply("not-writable"); err != nil {
				return err
			}
		default:
			if err := reply("NONE"); err != nil {
				return err
			}
		}
	}
	return in.Err()
}
