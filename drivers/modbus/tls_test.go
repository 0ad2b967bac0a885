package modbus

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/drivers/modbus/modbustest"
)

// testPKI is a CA with a server and a client certificate, written as PEM
// files for Config.TLS.
type testPKI struct {
	caPool     *x509.CertPool
	server     tls.Certificate
	caFile     string
	clientCert string
	clientKey  string
}

func newTestPKI(t *testing.T, dir, cn string) testPKI {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth)
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth)
	pki := testPKI{caPool: x509.NewCertPool()}
	pki.caPool.AddCert(ca)
	pki.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	write := func(name, typ string, der []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	keyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	pki.caFile = write(cn+"-ca.pem", "CERTIFICATE", caDER)
	pki.clientCert = write(cn+"-client.pem", "CERTIFICATE", cliDER)
	pki.clientKey = write(cn+"-client.key", "EC PRIVATE KEY", keyDER)
	return pki
}

// TestTLS reads over Modbus/TCP Security with mutual authentication, and
// fails closed with a client certificate from another CA.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	good := newTestPKI(t, dir, "site")
	rogue := newTestPKI(t, dir, "rogue")
	srv := modbustest.NewTLSServer(t, &good.server, good.caPool)
	serveSmall(srv, 1, 400)

	cfg := testConfig(srv.URL, 1)
	cfg.TLS = TLSConfig{CAFile: good.caFile, CertFile: good.clientCert, KeyFile: good.clientKey}
	p := mustPoller(t, NewPool(testLog(t)), cfg, smallProfile())
	out, err := pollOnce(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].OK() || out[0].Value != 40 {
		t.Errorf("over TLS: %v %v", out[0].Value, out[0].Fault)
	}

	bad := testConfig(srv.URL, 2)
	bad.TLS = TLSConfig{CAFile: good.caFile, CertFile: rogue.clientCert, KeyFile: rogue.clientKey}
	bp := mustPoller(t, NewPool(testLog(t)), bad, smallProfile())
	out, err = pollOnce(t, bp)
	if err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	for _, r := range out {
		if r.OK() {
			t.Errorf("%s read with a rogue certificate", r.Point.Name)
		}
	}

	missing := testConfig(srv.URL, 3)
	missing.TLS = TLSConfig{CAFile: filepath.Join(dir, "nope.pem"), CertFile: good.clientCert, KeyFile: good.clientKey}
	if _, err := NewPool(testLog(t)).NewPoller(missing, smallProfile()); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Errorf("missing CA file: err %v, want tls.ca_file", err)
	}
}
