package modbus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	mb "github.com/simonvetter/modbus"
)

// Pool hands out pollers and makes devices that share a URL (unit ids
// behind one gateway, drops on one serial line) share one client.
// NewPoller and Close may be called from any goroutine; the pollers of one
// link must then all be driven by a single goroutine (see Poller.Link).
type Pool struct {
	log   *slog.Logger
	mu    sync.Mutex
	links map[string]*link
}

// NewPool returns an empty pool logging to log.
func NewPool(log *slog.Logger) *Pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pool{log: log, links: map[string]*link{}}
}

// readClient is the part of the simonvetter client the driver uses: read
// function codes only (1, 2, 3, 4). Holding the client through this
// interface keeps any write out of the driver at compile time.
type readClient interface {
	Open() error
	Close() error
	SetUnitId(id uint8) error
	ReadRawBytes(addr, quantity uint16, regType mb.RegType) ([]byte, error)
	ReadCoils(addr, quantity uint16) ([]bool, error)
	ReadDiscreteInputs(addr, quantity uint16) ([]bool, error)
}

// link is one simonvetter client and its state. Only the goroutine that
// owns the link touches it after creation.
type link struct {
	key    string
	tr     transport
	client readClient
	open   bool
	unit   int // unit id last set on the client; -1 unknown
	refs   int // guarded by Pool.mu
}

// acquire returns the link for cfg, creating it on first use.
func (p *Pool) acquire(cfg *Config) (*link, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := cfg.linkKey()
	tr := cfg.transport()
	if l, ok := p.links[key]; ok {
		if l.tr != tr {
			return nil, &ConfigError{"url", fmt.Sprintf("%s is shared with another device whose timeout, serial or tls settings differ", key)}
		}
		l.refs++
		return l, nil
	}
	cc := &mb.ClientConfiguration{URL: cfg.URL, Timeout: tr.timeout,
		// simonvetter writes to stdout without a logger.
		Logger: slog.NewLogLogger(p.log.With("link", key).Handler(), slog.LevelDebug)}
	if cfg.scheme() == "rtu" {
		cc.Speed, cc.DataBits, cc.StopBits = uint(tr.speed), uint(tr.dataBits), uint(tr.stopBits)
		switch tr.parity {
		case "even":
			cc.Parity = mb.PARITY_EVEN
		case "odd":
			cc.Parity = mb.PARITY_ODD
		default:
			cc.Parity = mb.PARITY_NONE
		}
	}
	if cfg.scheme() == "tcp+tls" {
		cert, pool, err := tr.loadTLS()
		if err != nil {
			return nil, err
		}
		cc.TLSClientCert, cc.TLSRootCAs = cert, pool
	}
	client, err := mb.NewClient(cc)
	if err != nil {
		return nil, &ConfigError{"url", fmt.Sprintf("%s: %v", cfg.URL, err)}
	}
	l := &link{key: key, tr: tr, client: client, unit: -1, refs: 1}
	p.links[key] = l
	return l, nil
}

// release drops one reference and closes the link with the last one.
func (p *Pool) release(l *link) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	l.refs--
	if l.refs > 0 {
		return nil
	}
	delete(p.links, l.key)
	return l.reset()
}

// reset closes the client after a transport error: simonvetter does not
// reconnect by itself, so the next request reopens it.
func (l *link) reset() error {
	if !l.open {
		return nil
	}
	l.open, l.unit = false, -1
	return l.client.Close()
}

// read reads qty registers or bits starting at addr into dst.
func (l *link) read(unit uint8, sp space, addr uint16, dst []uint16) error {
	if !l.open {
		if err := l.client.Open(); err != nil {
			return &linkError{op: "open", err: err}
		}
		l.open, l.unit = true, -1
	}
	if l.unit != int(unit) {
		if err := l.client.SetUnitId(unit); err != nil {
			return err
		}
		l.unit = int(unit)
	}
	qty := uint16(len(dst))
	switch sp {
	case spHolding, spInput:
		rt := mb.HOLDING_REGISTER
		if sp == spInput {
			rt = mb.INPUT_REGISTER
		}
		// Raw bytes: one allocation less than ReadRegisters inside the
		// library, and we decode into our own buffer.
		b, err := l.client.ReadRawBytes(addr, 2*qty, rt)
		if err != nil {
			return err
		}
		if len(b) != 2*len(dst) {
			return mb.ErrProtocolError
		}
		for i := range dst {
			dst[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
	case spCoil, spDiscrete:
		var bs []bool
		var err error
		if sp == spCoil {
			bs, err = l.client.ReadCoils(addr, qty)
		} else {
			bs, err = l.client.ReadDiscreteInputs(addr, qty)
		}
		if err != nil {
			return err
		}
		if len(bs) != len(dst) {
			return mb.ErrProtocolError
		}
		for i, b := range bs {
			dst[i] = 0
			if b {
				dst[i] = 1
			}
		}
	}
	return nil
}

// linkError marks a failure to open the link.
type linkError struct {
	op  string
	err error
}

func (e *linkError) Error() string { return e.op + ": " + e.err.Error() }
func (e *linkError) Unwrap() error { return e.err }

// errClass says what a read error means for the point, the device and the
// link.
type errClass uint8

const (
	classOK        errClass = iota
	classAbsent             // illegal data address: the registers do not exist
	classException          // another exception: the device answered
	classBusy               // server device busy: retry
	classMalformed          // garbage frame: reset the link, keep going
	classTimeout            // no answer: reset the link, device is dead
	classDown               // transport broken or gateway says the target is gone
)

func classify(err error) errClass {
	switch {
	case err == nil:
		return classOK
	case errors.Is(err, mb.ErrIllegalDataAddress):
		return classAbsent
	case errors.Is(err, mb.ErrServerDeviceBusy):
		return classBusy
	case errors.Is(err, mb.ErrGWTargetFailedToRespond):
		return classTimeout
	case errors.Is(err, mb.ErrGWPathUnavailable):
		return classDown
	case errors.Is(err, mb.ErrIllegalFunction), errors.Is(err, mb.ErrIllegalDataValue),
		errors.Is(err, mb.ErrServerDeviceFailure), errors.Is(err, mb.ErrAcknowledge),
		errors.Is(err, mb.ErrMemoryParityError):
		return classException
	case errors.Is(err, mb.ErrRequestTimedOut), os.IsTimeout(err):
		return classTimeout
	case errors.Is(err, mb.ErrProtocolError), errors.Is(err, mb.ErrShortFrame),
		errors.Is(err, mb.ErrBadCRC), errors.Is(err, mb.ErrBadUnitId),
		errors.Is(err, mb.ErrBadTransactionId), errors.Is(err, mb.ErrUnknownProtocolId),
		errors.Is(err, io.ErrUnexpectedEOF):
		return classMalformed
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return classTimeout
	}
	return classDown
}
