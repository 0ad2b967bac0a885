package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"

	"github.com/emberwatch/emberwatch/internal/wire"
)

// tlsFailure reports whether a round failed because the device's TLS
// handshake was refused (certificate expired, unknown CA, wrong name, or
// the device refused ours): Modbus/TCP Security fails closed, and the NOC
// must hear of it, not just see a device "down".
func tlsFailure(err error) bool {
	if err == nil {
		return false
	}
	var (
		verr *tls.CertificateVerificationError
		aerr tls.AlertError
		uerr x509.UnknownAuthorityError
		cerr x509.CertificateInvalidError
		herr x509.HostnameError
	)
	if errors.As(err, &verr) || errors.As(err, &aerr) || errors.As(err, &uerr) || errors.As(err, &cerr) || errors.As(err, &herr) {
		return true
	}
	// Some client libraries flatten the cause into text.
	msg := err.Error()
	return strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ")
}

// linkSecurity raises a security alert (watch) when a device's TLS
// handshake starts failing, and clears it when the device answers again.
// Runs on the device's processor goroutine.
func (a *Agent) linkSecurity(ctx context.Context, d *device, r *round) {
	failing := tlsFailure(r.err)
	if failing == d.tlsAlerted || (!failing && r.err != nil) {
		return
	}
	al := wire.Alert{Device: d.id, Component: "link", Category: wire.CategorySecurity, SampleTime: r.at.UTC(),
		Signatures: []wire.Signature{{Kind: "tls_handshake_refused", Value: 1, Threshold: 0}}}
	if failing {
		al.Stage, al.PreviousStage = wire.StageWatch, wire.StageNormal
		al.Summary = "TLS handshake with " + d.id + " refused: " + r.err.Error()
	} else {
		al.Stage, al.PreviousStage = wire.StageNormal, wire.StageWatch
		al.Summary = "TLS handshake with " + d.id + " works again"
		al.Signatures[0].Value = 0
	}
	d.tlsAlerted = failing
	a.publishAlert(ctx, d, al)
}
