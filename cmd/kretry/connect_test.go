package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kretry/kretry/internal/kafkatest"
)

// selfSigned is a server certificate for 127.0.0.1 that no CA signed.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// TestConnectErrorsNameTheSetting: against a TLS listener, a config without
// tls, with a CA that does not sign the broker, or with SASL but no tls gets
// an error that names the cause and the setting in the -c file, not "check
// --brokers and that Kafka runs" or "check the password".
func TestConnectErrorsNameTheSetting(t *testing.T) {
	noEnvOverrides(t)
	main := kafkatest.Name(t, "orders")
	srv := &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, MinVersion: tls.VersionTLS12}
	tlsOnly := fakeWithMain(t, main, kfake.TLS(srv))
	saslTLS := fakeWithMain(t, main, kfake.TLS(srv), kfake.EnableSASL(), kfake.Superuser("PLAIN", "svc", "pw"))
	t.Setenv("KRETRY_TEST_SASL_PASSWORD", "pw")
	cases := []struct {
		name  string
		seeds []string
		extra string
		want  []string
	}{
		{"no tls section", tlsOnly, "", []string{"as a TLS listener does when a client speaks plaintext: add a tls section", "; edit tls in "}},
		{"the system's CAs", tlsOnly, "tls: {}\n", []string{"is signed by a CA the system does not trust: set tls.ca_file to", "; edit tls.ca_file in "}},
		{"SASL without tls", saslTLS, "sasl: {mechanism: PLAIN, username: svc, password_env: KRETRY_TEST_SASL_PASSWORD}\n",
			[]string{"as a TLS listener does when a client speaks plaintext: add a tls section", "; edit tls in "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.seeds, main, tc.extra)
			r := kretry(t, "topics", "plan", "-c", cfg)
			if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, cfg+"\n") {
				t.Errorf("topics plan: %v", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q: %v", w, r)
				}
			}
			for _, bad := range []string{"password", "--brokers", "reachable"} {
				if strings.Contains(r.stderr, bad) {
					t.Errorf("stderr points at %s: %v", bad, r)
				}
			}
		})
	}
}
