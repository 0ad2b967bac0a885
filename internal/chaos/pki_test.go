package chaos

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
	"testing"
	"time"
)

// testCA is a certificate authority that issues leaf certificates for
// loopback TLS tests, written as PEM files where a config needs paths.
type testCA struct {
	t      testing.TB
	dir    string
	name   string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	Pool   *x509.CertPool
	CAFile string
	serial int64
}

func newCA(t testing.TB, dir, name string) *testCA {
	t.Helper()
	key := ecKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{t: t, dir: dir, name: name, cert: cert, key: key, Pool: x509.NewCertPool(), serial: 1}
	ca.Pool.AddCert(cert)
	ca.CAFile = writePEM(t, dir, name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// leaf is an issued certificate, in memory and as PEM files.
type leaf struct {
	TLS               tls.Certificate
	CertFile, KeyFile string
}

// issue signs a leaf for 127.0.0.1 valid from notBefore to notAfter.
func (ca *testCA) issue(cn string, usage x509.ExtKeyUsage, notBefore, notAfter time.Time) leaf {
	t := ca.t
	t.Helper()
	ca.serial++
	k := ecKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return leaf{
		TLS:      tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k},
		CertFile: writePEM(t, ca.dir, ca.name+"-"+cn+".pem", "CERTIFICATE", der),
		KeyFile:  writePEM(t, ca.dir, ca.name+"-"+cn+".key", "EC PRIVATE KEY", kder),
	}
}

// valid issues a certificate valid now.
func (ca *testCA) valid(cn string, usage x509.ExtKeyUsage) leaf {
	return ca.issue(cn, usage, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}
