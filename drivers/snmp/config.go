package snmp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gosnmp/gosnmp"
)

// Config is a device's `snmp:` block in the agent configuration
// (contract.md section 2).
type Config struct {
	// Target is udp://host[:port] (default port 161); udp6:// and tcp://
	// are accepted too.
	Target string `yaml:"target"`
	// Version is "1", "2c" or "3". Defaults to "2c".
	Version string `yaml:"version"`
	// Community for v1/v2c. Defaults to "public".
	Community string `yaml:"community"`
	V3        *V3    `yaml:"v3,omitempty"`
	// Timeout per request. Defaults to 2s.
	Timeout time.Duration `yaml:"timeout"`
	// Retries per request. Defaults to 1.
	Retries *int `yaml:"retries,omitempty"`
	// AllowInsecure permits v3 below authPriv (noAuthNoPriv, authNoPriv).
	AllowInsecure bool `yaml:"allow_insecure,omitempty"`
	// MaxOIDs overrides the profile's varbinds per Get (default 60).
	MaxOIDs int `yaml:"max_oids,omitempty"`

	// Name is the device id used in messages (set by the agent from the
	// device's id; not read from YAML).
	Name string `yaml:"-"`
}

// V3 holds SNMPv3 USM credentials.
type V3 struct {
	User string `yaml:"user"`
	// AuthProtocol: MD5, SHA, SHA224, SHA256, SHA384, SHA512 ("SHA-256"
	// is accepted too).
	AuthProtocol   string `yaml:"auth_protocol"`
	AuthPassphrase string `yaml:"auth_passphrase"`
	// PrivProtocol: DES, AES (AES-128), AES192, AES256, AES192C, AES256C.
	PrivProtocol   string `yaml:"priv_protocol"`
	PrivPassphrase string `yaml:"priv_passphrase"`
	// SecurityLevel: authPriv (default), authNoPriv, noAuthNoPriv; the two
	// last need allow_insecure.
	SecurityLevel string `yaml:"security_level,omitempty"`
	// ContextName for agents that serve several contexts.
	ContextName string `yaml:"context_name,omitempty"`
}

func (c Config) name() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Target
}

// Validate reports every problem of the block, each naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("snmp.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, _, _, err := parseTarget(c.Target); err != nil {
		bad("target", "%v", err)
	}
	switch c.Version {
	case "", "1", "2c":
		if c.V3 != nil && c.V3.User != "" {
			bad("v3", "set but version is %q (want \"3\")", c.version())
		}
	case "3":
		if c.V3 == nil || c.V3.User == "" {
			bad("v3.user", "required for version 3")
			break
		}
		lvl, err := c.V3.level()
		if err != nil {
			bad("v3.security_level", "%v", err)
			break
		}
		if lvl != gosnmp.AuthPriv && !c.AllowInsecure {
			bad("v3.security_level", "%s sends credentials or data in clear; use authPriv or set allow_insecure: true", c.V3.SecurityLevel)
		}
		if lvl != gosnmp.NoAuthNoPriv {
			if _, err := authProto(c.V3.AuthProtocol); err != nil {
				bad("v3.auth_protocol", "%v", err)
			}
			if len(c.V3.AuthPassphrase) < 8 {
				bad("v3.auth_passphrase", "must be at least 8 characters (RFC 3414)")
			}
		}
		if lvl == gosnmp.AuthPriv {
			if _, err := privProto(c.V3.PrivProtocol); err != nil {
				bad("v3.priv_protocol", "%v", err)
			}
			if len(c.V3.PrivPassphrase) < 8 {
				bad("v3.priv_passphrase", "must be at least 8 characters (RFC 3414)")
			}
		}
	default:
		bad("version", "%q is not one of \"1\", \"2c\", \"3\"", c.Version)
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	if c.Retries != nil && (*c.Retries < 0 || *c.Retries > 10) {
		bad("retries", "%d is outside 0..10", *c.Retries)
	}
	if c.MaxOIDs < 0 || c.MaxOIDs > 1000 {
		bad("max_oids", "%d is outside 1..1000", c.MaxOIDs)
	}
	return errors.Join(errs...)
}

func (c Config) version() string {
	if c.Version == "" {
		return "2c"
	}
	return c.Version
}

func (v *V3) level() (gosnmp.SnmpV3MsgFlags, error) {
	switch strings.ToLower(v.SecurityLevel) {
	case "", "authpriv":
		return gosnmp.AuthPriv, nil
	case "authnopriv":
		return gosnmp.AuthNoPriv, nil
	case "noauthnopriv":
		return gosnmp.NoAuthNoPriv, nil
	}
	return 0, fmt.Errorf("%q is not authPriv, authNoPriv or noAuthNoPriv", v.SecurityLevel)
}

func authProto(s string) (gosnmp.SnmpV3AuthProtocol, error) {
	switch strings.ToUpper(strings.ReplaceAll(s, "-", "")) {
	case "MD5":
		return gosnmp.MD5, nil
	case "SHA", "SHA1":
		return gosnmp.SHA, nil
	case "SHA224":
		return gosnmp.SHA224, nil
	case "SHA256":
		return gosnmp.SHA256, nil
	case "SHA384":
		return gosnmp.SHA384, nil
	case "SHA512":
		return gosnmp.SHA512, nil
	}
	return 0, fmt.Errorf("%q is not MD5, SHA, SHA224, SHA256, SHA384 or SHA512", s)
}

func privProto(s string) (gosnmp.SnmpV3PrivProtocol, error) {
	switch strings.ToUpper(strings.ReplaceAll(s, "-", "")) {
	case "DES":
		return gosnmp.DES, nil
	case "AES", "AES128":
		return gosnmp.AES, nil
	case "AES192":
		return gosnmp.AES192, nil
	case "AES256":
		return gosnmp.AES256, nil
	case "AES192C":
		return gosnmp.AES192C, nil
	case "AES256C":
		return gosnmp.AES256C, nil
	}
	return 0, fmt.Errorf("%q is not DES, AES, AES192, AES256, AES192C or AES256C", s)
}

// parseTarget splits udp://host[:port].
func parseTarget(t string) (transport, host string, port uint16, err error) {
	if t == "" {
		return "", "", 0, errors.New("required (udp://host[:port])")
	}
	if !strings.Contains(t, "://") {
		t = "udp://" + t
	}
	u, err := url.Parse(t)
	if err != nil {
		return "", "", 0, fmt.Errorf("%q: %v", t, err)
	}
	switch u.Scheme {
	case "udp", "udp4", "udp6", "tcp", "tcp4", "tcp6":
	default:
		return "", "", 0, fmt.Errorf("%q: scheme %q is not udp or tcp", t, u.Scheme)
	}
	host = u.Hostname()
	if host == "" {
		return "", "", 0, fmt.Errorf("%q: no host", t)
	}
	port = 161
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", "", 0, fmt.Errorf("%q: bad port %q", t, p)
		}
		port = uint16(n)
	}
	return u.Scheme, host, port, nil
}

// client builds a gosnmp client for the config; it does no I/O until
// Connect.
func (c Config) client(maxOIDs, maxReps int) (*gosnmp.GoSNMP, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("snmp device %s: %w", c.name(), err)
	}
	tr, host, port, _ := parseTarget(c.Target)
	g := &gosnmp.GoSNMP{
		Target:             host,
		Port:               port,
		Transport:          strings.TrimRight(tr, "46"),
		Community:          c.Community,
		Timeout:            c.Timeout,
		Retries:            1,
		MaxOids:            maxOIDs,
		MaxRepetitions:     uint32(maxReps),
		ExponentialTimeout: false,
	}
	if g.Community == "" {
		g.Community = "public"
	}
	if g.Timeout == 0 {
		g.Timeout = 2 * time.Second
	}
	if c.Retries != nil {
		g.Retries = *c.Retries
	}
	switch c.version() {
	case "1":
		g.Version = gosnmp.Version1
	case "2c":
		g.Version = gosnmp.Version2c
	case "3":
		g.Version = gosnmp.Version3
		g.SecurityModel = gosnmp.UserSecurityModel
		lvl, _ := c.V3.level()
		g.MsgFlags = lvl
		g.ContextName = c.V3.ContextName
		usm := &gosnmp.UsmSecurityParameters{UserName: c.V3.User}
		if lvl != gosnmp.NoAuthNoPriv {
			usm.AuthenticationProtocol, _ = authProto(c.V3.AuthProtocol)
			usm.AuthenticationPassphrase = c.V3.AuthPassphrase
		} else {
			usm.AuthenticationProtocol = gosnmp.NoAuth
		}
		if lvl == gosnmp.AuthPriv {
			usm.PrivacyProtocol, _ = privProto(c.V3.PrivProtocol)
			usm.PrivacyPassphrase = c.V3.PrivPassphrase
		} else {
			usm.PrivacyProtocol = gosnmp.NoPriv
		}
		g.SecurityParameters = usm
	}
	return g, nil
}

// link names the device's link for logs: "snmp udp://10.0.0.9:161 v2c".
func (c Config) link() string {
	tr, host, port, err := parseTarget(c.Target)
	if err != nil {
		return "snmp " + c.Target
	}
	s := fmt.Sprintf("snmp %s://%s v%s", tr, net.JoinHostPort(host, strconv.Itoa(int(port))), c.version())
	if c.version() == "3" && c.V3 != nil {
		s += " user=" + c.V3.User
	}
	return s
}
