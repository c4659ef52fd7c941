package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// brokersLabel is a name the lookup of Load and Parse answers when the
// brokers come from WithBrokers rather than KRETRY_BROKERS: the name their
// errors give.
const brokersLabel = "\x00brokers-label"

// CheckBroker checks a seed broker address: "host:port" with a host name or
// an IP address (IPv6 in brackets) and a port from 1 to 65535, without a
// scheme. Its error says what is wrong and shows the address quoted.
func CheckBroker(addr string) error {
	bad := func(why string) error {
		return fmt.Errorf(`must be a broker address "host:port" with a port from 1 to 65535, e.g. "127.0.0.1:9092"%s, got %s`, why, quoteCut(addr))
	}
	if i := strings.Index(addr, "://"); i >= 0 {
		return bad(": no scheme (" + show(addr[:i+3]) + ")")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if strings.Count(addr, ":") == 0 {
			return bad(": the port is missing")
		}
		return bad("")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '0' {
		return bad(": the port is not in 1-65535")
	}
	if host == "" {
		return bad(": the host is missing")
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if strings.ContainsRune(host, ':') || len(host) > 253 {
		return bad("")
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return bad("")
		}
		for _, r := range label {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
				return bad("")
			}
		}
	}
	return nil
}

func (d *decoder) tls(f field) *TLS {
	fields, ok := d.mapping(f.value, f.line, "tls", tlsKeys, nil)
	if !ok {
		return nil
	}
	t := &TLS{}
	t.CAFile, _, _ = d.nonEmpty(fields, "ca_file", "tls.ca_file", "the PEM file of the CAs that sign the brokers' certificates; omit it for the system's CAs")
	cert, certLine, hasCert := d.nonEmpty(fields, "cert_file", "tls.cert_file", "the PEM file of the client certificate")
	key, keyLine, hasKey := d.nonEmpty(fields, "key_file", "tls.key_file", "the PEM file of the client certificate's private key")
	t.CertFile, t.KeyFile = cert, key
	switch {
	case hasKey && !hasCert:
		d.errorf(keyLine, "tls.key_file", "given without tls.cert_file: set both for a client certificate, or neither")
	case hasCert && !hasKey:
		d.errorf(certLine, "tls.cert_file", "given without tls.key_file: set both for a client certificate, or neither")
	}
	if v, ok := fields["insecure_skip_verify"]; ok && v.value != nil {
		b, isBool := v.value.(*ast.BoolNode)
		if !isBool {
			d.errorf(v.line, "tls.insecure_skip_verify", "must be true or false, got %s", describe(v.value))
		} else {
			t.InsecureSkipVerify = b.Value
		}
	}
	return t
}

func (d *decoder) sasl(f field) *SASL {
	fields, ok := d.mapping(f.value, f.line, "sasl", saslKeys, map[string]string{
		"password": "not allowed: never put the password in the file; export it in an environment variable and name that variable in sasl.password_env",
	})
	if !ok {
		return nil
	}
	s := &SASL{}
	line := func(key string) int { return max(fields[key].line, f.line) }
	if m, l, ok := d.nonEmpty(fields, "mechanism", "sasl.mechanism", "one of "+strings.Join(mechanisms, ", ")); ok {
		for _, want := range mechanisms {
			if strings.EqualFold(m, want) {
				s.Mechanism = want
			}
		}
		if s.Mechanism == "" {
			d.errorf(l, "sasl.mechanism", "must be one of %s, got %s", strings.Join(mechanisms, ", "), quoteCut(m))
		}
	} else if fv, given := fields["mechanism"]; !given || fv.value == nil {
		d.errorf(line("mechanism"), "sasl.mechanism", "required: one of %s", strings.Join(mechanisms, ", "))
	}
	if u, _, ok := d.nonEmpty(fields, "username", "sasl.username", "the SASL user name"); ok {
		s.Username = u
	} else if fv, given := fields["username"]; !given || fv.value == nil {
		d.errorf(line("username"), "sasl.username", "required: the SASL user name")
	}
	if e, l, ok := d.str(fields, "password_env", "sasl.password_env"); ok {
		// The value is not echoed: it may be a password put there by mistake.
		if !envName.MatchString(e) {
			d.errorf(l, "sasl.password_env", "must be the name of an environment variable (letters, digits and _, e.g. KRETRY_SASL_PASSWORD) that holds the password, not the password itself")
		} else {
			s.PasswordEnv = e
		}
	} else if fv, given := fields["password_env"]; !given || fv.value == nil {
		d.errorf(line("password_env"), "sasl.password_env", "required: the name of the environment variable that holds the password, e.g. password_env: KRETRY_SASL_PASSWORD")
	}
	return s
}
