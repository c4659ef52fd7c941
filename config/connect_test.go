package config_test

import (
	"crypto/tls"
	"errors"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/kafkatest"
)

// plaintextCloser listens on 127.0.0.1 like a plaintext Kafka listener does
// to a TLS client: it reads what came (a ClientHello, whose first bytes read
// as the size of a 369 MB request, over socket.request.max.bytes) and closes.
func plaintextCloser(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 64<<10)
			conn.Read(buf)
			conn.Close()
		}
	}()
	return ln.Addr().String()
}

// cliAdvice matches a kretry command in a message: library errors leave
// that advice to the CLI.
var cliAdvice = regexp.MustCompile(`kretry (topics|relay|config|dlq|broker)|-c kretry.yaml`)

// TestConnectErrorNamesTheCause connects to real listeners on 127.0.0.1
// (kfake's TLS listeners use crypto/tls, as a broker's do) with a setting
// wrong, and wants the error to name the cause and the setting to change,
// not "check that the brokers are reachable".
func TestConnectErrorNamesTheCause(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	server := func(mutual bool) *tls.Config {
		c := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
		if mutual {
			c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, p.ca
		}
		return c
	}
	_, mutualTLS := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.TLS(server(true)))
	_, tlsOnly := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.TLS(server(false)))
	_, saslTLS := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.TLS(server(false)), kfake.EnableSASL(), kfake.Superuser("PLAIN", "svc", "pw"))
	plain := plaintextCloser(t)
	t.Setenv("TEST_KAFKA_PW", "pw")
	sasl := &config.SASL{Mechanism: "PLAIN", Username: "svc", PasswordEnv: "TEST_KAFKA_PW"}
	localhost := func(seeds []string) []string { // the certificate holds 127.0.0.1 only
		_, port, _ := net.SplitHostPort(seeds[0])
		return []string{"localhost:" + port}
	}

	cases := []struct {
		name    string
		brokers []string
		tls     *config.TLS
		sasl    *config.SASL
		setting string
		want    string // in the message
	}{
		{"mutual TLS without a client certificate", mutualTLS, &config.TLS{CAFile: p.caFile}, nil,
			"tls.cert_file", "requires a client certificate (mutual TLS) and none was sent: set tls.cert_file and tls.key_file to the client certificate and its key"},
		{"a client certificate of another CA", mutualTLS, &config.TLS{CAFile: p.caFile, CertFile: other.cert, KeyFile: other.key}, nil,
			"tls.cert_file", "refused the client certificate in tls.cert_file " + other.cert + ": use a client certificate signed by a CA the brokers trust"},
		{"tls.ca_file of another CA", tlsOnly, &config.TLS{CAFile: other.caFile}, nil,
			"tls.ca_file", "is not signed by a CA in tls.ca_file " + other.caFile + ": set tls.ca_file to the PEM file of the CA that signed the brokers' certificates"},
		{"the system's CAs for a private CA", tlsOnly, &config.TLS{}, nil,
			"tls.ca_file", "is signed by a CA the system does not trust: set tls.ca_file to the PEM file of the CA that signed the brokers' certificates"},
		{"a name the certificate does not hold", localhost(tlsOnly), &config.TLS{CAFile: p.caFile}, nil,
			"brokers", `is not valid for the name localhost: list the brokers by a name or address their certificate holds`},
		{"TLS against a plaintext listener", []string{plain}, &config.TLS{CAFile: p.caFile}, nil,
			"tls", "closed the connection when the TLS handshake began, as a plaintext listener does: the listener does not speak TLS; remove the tls section for a plaintext listener, or list the brokers' TLS listener in brokers"},
		{"SASL against a TLS-only listener", saslTLS, nil, sasl,
			"tls", "closed the connection at the first request, as a TLS listener does when a client speaks plaintext: add a tls section"},
		{"plaintext against a TLS-only listener", tlsOnly, nil, nil,
			"tls", "closed the connection at the first request, as a TLS listener does when a client speaks plaintext: add a tls section"},
		{"TLS without SASL against SASL over TLS", saslTLS, &config.TLS{CAFile: p.caFile}, nil,
			"sasl", "closed the connection after the TLS handshake, as brokers do that want SASL: add a sasl section"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &config.Config{Brokers: tc.brokers, TLS: tc.tls, SASL: tc.sasl}
			err := ping(t, c)
			if err == nil {
				t.Fatal("ping succeeded")
			}
			got := c.ConnectError(err)
			var ce *config.ConnectionError
			if !errors.As(got, &ce) || ce.Setting != tc.setting || !strings.Contains(got.Error(), tc.want) {
				t.Errorf("ConnectError(%v) =\n%v\n(setting %q), want setting %q and %q", err, got, ce.Setting, tc.setting, tc.want)
			}
			if !errors.Is(got, err) {
				t.Errorf("ConnectError does not wrap %v", err)
			}
			if cliAdvice.MatchString(got.Error()) || strings.Contains(got.Error(), "reachable") {
				t.Errorf("ConnectError gives CLI advice or blames the network: %v", got)
			}
		})
	}
}
