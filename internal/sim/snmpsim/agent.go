package snmpsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/gosnmp/gosnmp"
)

// Agent answers SNMP v1/v2c Get, GetNext and GetBulk from a Store over
// UDP. Writes are refused (the agent is read-only, like emberwatch).
// SNMPv3 is not spoken: v3 tests run against Debian's snmpd
// (internal/testenv.StartSNMPD).
type Agent struct {
	store       *Store
	communities map[string]bool
	log         *slog.Logger
	conn        *net.UDPConn
	silent      atomic.Bool
	requests    atomic.Uint64
	maxBulk     int
	errMu       sync.Mutex
	errs        map[string]gosnmp.SNMPError // Get of these OIDs fails the PDU
	wg          sync.WaitGroup
	closeOnce   sync.Once
}

// Options tune an Agent.
type Options struct {
	// Communities accepted (default "public").
	Communities []string
	// MaxBulkVars caps the varbinds of one GetBulk answer (default 200),
	// as real agents truncate.
	MaxBulkVars int
}

// NewAgent serves store.
func NewAgent(store *Store, o Options, log *slog.Logger) *Agent {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{store: store, communities: map[string]bool{}, log: log, maxBulk: o.MaxBulkVars}
	if len(o.Communities) == 0 {
		o.Communities = []string{"public"}
	}
	for _, c := range o.Communities {
		a.communities[c] = true
	}
	if a.maxBulk <= 0 {
		a.maxBulk = 200
	}
	return a
}

// Listen binds addr ("127.0.0.1:0" for a free port) and serves until ctx
// is done or Close is called.
func (a *Agent) Listen(ctx context.Context, addr string) error {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("snmpsim: listen %s: %w", addr, err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return fmt.Errorf("snmpsim: listen %s: %w", addr, err)
	}
	a.conn = c
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.serve()
	}()
	go func() {
		<-ctx.Done()
		a.Close()
	}()
	return nil
}

// Addr is the bound address.
func (a *Agent) Addr() *net.UDPAddr { return a.conn.LocalAddr().(*net.UDPAddr) }

// Close stops serving and waits for the loop to end.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		if a.conn != nil {
			a.conn.Close()
		}
	})
	a.wg.Wait()
	return nil
}

// SetSilent makes the agent drop every request (a dead device: timeouts).
func (a *Agent) SetSilent(on bool) { a.silent.Store(on) }

// SetError makes every Get that includes oid fail with status (genErr...),
// as some agents fail a whole PDU for one object; gosnmp.NoError clears it.
func (a *Agent) SetError(oid string, status gosnmp.SNMPError) {
	o, err := parseOID(oid)
	if err != nil {
		return
	}
	a.errMu.Lock()
	defer a.errMu.Unlock()
	if a.errs == nil {
		a.errs = map[string]gosnmp.SNMPError{}
	}
	if status == gosnmp.NoError {
		delete(a.errs, o.String())
		return
	}
	a.errs[o.String()] = status
}

func (a *Agent) errorFor(o oid) gosnmp.SNMPError {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.errs[o.String()]
}

// Requests counts the requests answered.
func (a *Agent) Requests() uint64 { return a.requests.Load() }

// Store is the served store; change values with Set and Delete.
func (a *Agent) Store() *Store { return a.store }

func (a *Agent) serve() {
	buf := make([]byte, 65535)
	dec := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Logger: gosnmp.NewLogger(nil)}
	for {
		n, from, err := a.conn.ReadFromUDP(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				a.log.Warn("snmpsim read", "err", err)
			}
			return
		}
		if a.silent.Load() {
			continue
		}
		req, err := dec.SnmpDecodePacket(buf[:n])
		if err != nil || req.Version == gosnmp.Version3 {
			continue // garbage or v3: real agents stay silent too
		}
		if !a.communities[req.Community] {
			continue
		}
		resp := a.answer(req)
		out, err := resp.MarshalMsg()
		if err != nil {
			a.log.Warn("snmpsim marshal", "err", err)
			continue
		}
		a.requests.Add(1)
		a.conn.WriteToUDP(out, from)
	}
}

func (a *Agent) answer(req *gosnmp.SnmpPacket) *gosnmp.SnmpPacket {
	resp := &gosnmp.SnmpPacket{Version: req.Version, Community: req.Community, PDUType: gosnmp.GetResponse,
		RequestID: req.RequestID, Logger: gosnmp.NewLogger(nil)}
	v1 := req.Version == gosnmp.Version1
	fail := func(status gosnmp.SNMPError, idx int) *gosnmp.SnmpPacket {
		resp.Error, resp.ErrorIndex = status, uint8(min(idx+1, 255))
		resp.Variables = req.Variables // v1: the request's varbinds come back
		for i := range resp.Variables {
			resp.Variables[i].Type, resp.Variables[i].Value = gosnmp.Null, nil
		}
		return resp
	}
	switch req.PDUType {
	case gosnmp.GetRequest:
		for i, v := range req.Variables {
			o, err := parseOID(v.Name)
			if err != nil {
				return fail(gosnmp.GenErr, i)
			}
			if st := a.errorFor(o); st != gosnmp.NoError {
				return fail(st, i)
			}
			pdu, ok := a.store.get(o)
			if !ok {
				if v1 {
					return fail(gosnmp.NoSuchName, i)
				}
				pdu = gosnmp.SnmpPDU{Name: o.String(), Type: gosnmp.NoSuchInstance}
			}
			resp.Variables = append(resp.Variables, pdu)
		}
	case gosnmp.GetNextRequest:
		for i, v := range req.Variables {
			o, err := parseOID(v.Name)
			if err != nil {
				return fail(gosnmp.GenErr, i)
			}
			pdu, _, ok := a.store.next(o)
			if !ok || (v1 && pdu.Type == gosnmp.Counter64) {
				if v1 {
					return fail(gosnmp.NoSuchName, i)
				}
				pdu = gosnmp.SnmpPDU{Name: o.String(), Type: gosnmp.EndOfMibView}
			}
			resp.Variables = append(resp.Variables, pdu)
		}
	case gosnmp.GetBulkRequest:
		nonRep := min(int(req.NonRepeaters), len(req.Variables))
		for _, v := range req.Variables[:nonRep] {
			o, _ := parseOID(v.Name)
			pdu, _, ok := a.store.next(o)
			if !ok {
				pdu = gosnmp.SnmpPDU{Name: v.Name, Type: gosnmp.EndOfMibView}
			}
			resp.Variables = append(resp.Variables, pdu)
		}
		rep := req.Variables[nonRep:]
		cur := make([]oid, len(rep))
		for i, v := range rep {
			cur[i], _ = parseOID(v.Name)
		}
		for r := 0; r < int(req.MaxRepetitions) && len(rep) > 0; r++ {
			if len(resp.Variables)+len(rep) > a.maxBulk {
				break
			}
			allEnd := true
			for i := range rep {
				pdu, next, ok := a.store.next(cur[i])
				if !ok {
					pdu = gosnmp.SnmpPDU{Name: cur[i].String(), Type: gosnmp.EndOfMibView}
				} else {
					cur[i] = next
					allEnd = false
				}
				resp.Variables = append(resp.Variables, pdu)
			}
			if allEnd {
				break
			}
		}
	case gosnmp.SetRequest:
		if v1 {
			return fail(gosnmp.ReadOnly, 0)
		}
		return fail(gosnmp.NotWritable, 0)
	default:
		return fail(gosnmp.GenErr, 0)
	}
	return resp
}
