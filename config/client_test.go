package config_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/kafkatest"
)

// parse builds a config from YAML text for a cluster at seeds.
func parse(t *testing.T, seeds []string, extra string) *config.Config {
	t.Helper()
	clearEnv(t)
	y := fmt.Sprintf("brokers: [%q]\ngroup: g\ntopics: [{name: t, tiers: [{delay: 1s}]}]\n%s", strings.Join(seeds, `", "`), extra)
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// ping connects with c's options and issues a real request.
func ping(t *testing.T, c *config.Config) error {
	t.Helper()
	opts, err := c.ClientOpts()
	if err != nil {
		t.Fatalf("ClientOpts: %v", err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	defer cl.Close()
	// The deadline only keeps a broken test from hanging; nothing is timed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

func TestClientOptsSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			const pw = "correct-horse-battery-staple"
			_, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "user", pw))
			c := parse(t, seeds, "sasl: {mechanism: "+mech+", username: user, password_env: TEST_KAFKA_PW}\n")

			t.Run("right password", func(t *testing.T) {
				t.Setenv("TEST_KAFKA_PW", pw)
				if err := ping(t, c); err != nil {
					t.Fatalf("ping with the right password: %v", err)
				}
			})
			t.Run("wrong password", func(t *testing.T) {
				const wrong = "wrong-password-1234"
				t.Setenv("TEST_KAFKA_PW", wrong)
				err := ping(t, c)
				if err == nil {
					t.Fatal("ping with a wrong password succeeded")
				}
				explained := c.ConnectError(err)
				for _, e := range []error{err, explained} {
					if strings.Contains(e.Error(), wrong) || strings.Contains(e.Error(), pw) {
						t.Errorf("error shows a password: %v", e)
					}
				}
				want := fmt.Sprintf(`cannot connect to %s as SASL user "user" (%s, password from TEST_KAFKA_PW): %v: check that the brokers are reachable and the user name and the password in TEST_KAFKA_PW`,
					seeds[0], mech, err)
				if explained.Error() != want {
					t.Errorf("ConnectError:\n%v\nwant:\n%s", explained, want)
				}
				if !errors.Is(explained, err) {
					t.Errorf("ConnectError does not wrap %v", err)
				}
			})
			t.Run("unset variable", func(t *testing.T) {
				t.Setenv("TEST_KAFKA_PW", "")
				os.Unsetenv("TEST_KAFKA_PW") // t.Setenv restores it
				opts, err := c.ClientOpts()
				if err == nil {
					t.Fatalf("ClientOpts gave %d options with the password variable unset", len(opts))
				}
				want := `line 4: sasl.password_env: environment variable TEST_KAFKA_PW is not set or empty: export it with the password of SASL user "user"`
				if err.Error() != want {
					t.Errorf("error:\n%s\nwant:\n%s", err, want)
				}
			})
		})
	}
}

func TestConnectError(t *testing.T) {
	c := &config.Config{Brokers: []string{"a:9093", "b:9093"}, TLS: &config.TLS{}}
	if err := c.ConnectError(nil); err != nil {
		t.Errorf("ConnectError(nil) = %v", err)
	}
	cause := errors.New("x509: certificate signed by unknown authority")
	want := "cannot connect to a:9093,b:9093 over TLS: x509: certificate signed by unknown authority: check that the brokers are reachable and the TLS settings"
	if got := c.ConnectError(cause); got.Error() != want || !errors.Is(got, cause) {
		t.Errorf("ConnectError = %v, want %s wrapping the cause", got, want)
	}
}

func TestClientOptsPlain(t *testing.T) {
	_, seeds := kafkatest.Fake(t, kfake.NumBrokers(1))
	c := parse(t, seeds, "client_id: my-service\n")
	if err := ping(t, c); err != nil {
		t.Fatalf("ping: %v", err)
	}
	// Without TLS, a TLS config is not put in.
	cl, err := kgo.NewClient(mustOpts(t, c)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.ClientID); got != "my-service" {
		t.Errorf("client id %v, want my-service", got)
	}
	if got := cl.OptValue(kgo.DialTLSConfig); got != (*tls.Config)(nil) {
		t.Errorf("TLS config %v without tls in the file", got)
	}
	if got := cl.OptValue(kgo.SeedBrokers); fmt.Sprint(got) != fmt.Sprint(seeds) {
		t.Errorf("seed brokers %v, want %v", got, seeds)
	}
}

func mustOpts(t *testing.T, c *config.Config) []kgo.Opt {
	t.Helper()
	opts, err := c.ClientOpts()
	if err != nil {
		t.Fatalf("ClientOpts: %v", err)
	}
	return opts
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files into dir.
type pki struct {
	dir                    string
	ca                     *x509.CertPool
	server                 tls.Certificate
	caFile, cert, key, bad string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kretry test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips ...net.IP) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	srvDER, srvKey := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	cliDER, cliKey := issue(3, "client", x509.ExtKeyUsageClientAuth)
	p := pki{dir: dir, ca: x509.NewCertPool()}
	p.ca.AddCert(caCert)
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	p.cert = write("client.pem", "CERTIFICATE", cliDER)
	p.key = write("client-key.pem", "PRIVATE KEY", keyDER(cliKey))
	p.bad = filepath.Join(dir, "not-pem.txt")
	if err := os.WriteFile(p.bad, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClientOptsMutualTLS connects to a kfake broker that requires a client
// certificate signed by the test CA, with the files named in the config.
func TestClientOptsMutualTLS(t *testing.T) {
	p := newPKI(t)
	_, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.ca,
		MinVersion:   tls.VersionTLS12,
	}))
	// The config file sits next to the PEM files and names them relatively:
	// Load resolves them against the file's directory.
	path := filepath.Join(p.dir, "kretry.yaml")
	yaml := fmt.Sprintf("brokers: [%q]\ngroup: g\ntls:\n  ca_file: ca.pem\n  cert_file: client.pem\n  key_file: client-key.pem\ntopics: [{name: t, tiers: [{delay: 1s}]}]\n", seeds[0])
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	clearEnv(t)
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.CAFile != p.caFile || c.TLS.CertFile != p.cert || c.TLS.KeyFile != p.key {
		t.Errorf("TLS files %+v not resolved against %s", *c.TLS, p.dir)
	}
	if err := ping(t, c); err != nil {
		t.Fatalf("ping over mutual TLS: %v", err)
	}

	t.Run("without client certificate", func(t *testing.T) {
		c2 := *c
		c2.TLS = &config.TLS{CAFile: p.caFile}
		if err := ping(t, &c2); err == nil {
			t.Fatal("ping without a client certificate succeeded against a broker that requires one")
		}
	})
	t.Run("without the CA", func(t *testing.T) {
		c2 := *c
		c2.TLS = &config.TLS{CertFile: p.cert, KeyFile: p.key} // system roots do not know the test CA
		if err := ping(t, &c2); err == nil {
			t.Fatal("ping verified a certificate of an unknown CA")
		}
	})
}

func TestClientOptsTLSFileErrors(t *testing.T) {
	p := newPKI(t)
	missing := filepath.Join(p.dir, "missing.pem")
	cases := []struct {
		name string
		tls  config.TLS
		want []string // the lines of the error, in order
	}{
		{"unreadable CA", config.TLS{CAFile: missing},
			[]string{"x.yaml:4: tls.ca_file: open " + missing + ": no such file or directory: give a readable PEM file of the CA certificates"}},
		{"CA not PEM", config.TLS{CAFile: p.bad},
			[]string{"x.yaml:4: tls.ca_file: no PEM certificate in " + p.bad + ": give a PEM file of the CA certificates"}},
		{"unreadable cert and key", config.TLS{CertFile: missing, KeyFile: missing},
			[]string{
				"x.yaml:5: tls.cert_file: open " + missing + ": no such file or directory: give a readable PEM file of the client certificate",
				"x.yaml:6: tls.key_file: open " + missing + ": no such file or directory: give a readable PEM file of the client certificate's key",
			}},
		{"key is not the cert's", config.TLS{CertFile: p.cert, KeyFile: p.caFile},
			[]string{"x.yaml:5: tls.cert_file: " + p.cert + " with tls.key_file " + p.caFile + ": tls: found a certificate rather than a key in the PEM for the private key: give a PEM certificate and its PEM private key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The lines come from the file; the fields are replaced after Load.
			path := filepath.Join(t.TempDir(), "x.yaml")
			y := "brokers: [a:9092]\ngroup: g\ntls:\n  ca_file: a\n  cert_file: b\n  key_file: c\ntopics: [{name: t, tiers: [{delay: 1s}]}]\n"
			if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			clearEnv(t)
			c, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			c.Source = "x.yaml"
			c.TLS = &tc.tls
			_, err = c.ClientOpts()
			if err == nil {
				t.Fatal("ClientOpts succeeded")
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}
