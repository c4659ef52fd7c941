package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// ClientOpts returns the franz-go options that connect to c's cluster: the
// seed brokers, the client id, TLS (the CA, certificate and key files are read
// now) and SASL with the password read now from the environment variable
// named by SASL.PasswordEnv. An unreadable file, a bad PEM or an unset
// password variable is an error naming the field; all such problems are
// returned at once. The password never appears in an error.
func (c *Config) ClientOpts() ([]kgo.Opt, error) {
	var errs []error
	var opts []kgo.Opt
	if len(c.Brokers) == 0 {
		errs = append(errs, c.fieldError("brokers", `empty: list at least one broker "host:port" or set %s`, EnvBrokers))
	} else {
		opts = append(opts, kgo.SeedBrokers(c.Brokers...))
	}
	id := c.ClientID
	if id == "" {
		id = DefaultClientID
	}
	opts = append(opts, kgo.ClientID(id))
	if c.TLS != nil {
		tc, err := c.tlsConfig()
		if err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, kgo.DialTLSConfig(tc))
		}
	}
	if c.SASL != nil {
		m, err := c.saslMechanism()
		if err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, kgo.SASL(m))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return opts, nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	t := c.TLS
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} // the user's explicit choice, documented as for testing only
	var errs []error
	if t.CAFile != "" {
		pem, err := readPEM(t.CAFile)
		switch {
		case err != nil:
			errs = append(errs, c.fieldError("tls.ca_file", "%v: give a readable PEM file of the CA certificates", err))
		default:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, c.fieldError("tls.ca_file", "no PEM certificate in %s: give a PEM file of the CA certificates", show(t.CAFile)))
			}
			tc.RootCAs = pool
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		certPEM, err := readPEM(t.CertFile)
		if err != nil {
			errs = append(errs, c.fieldError("tls.cert_file", "%v: give a readable PEM file of the client certificate", err))
		}
		keyPEM, kerr := readPEM(t.KeyFile)
		if kerr != nil {
			errs = append(errs, c.fieldError("tls.key_file", "%v: give a readable PEM file of the client certificate's key", kerr))
		}
		if err == nil && kerr == nil {
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				errs = append(errs, c.fieldError("tls.cert_file", "%s with tls.key_file %s: %v: give a PEM certificate and its PEM private key", show(t.CertFile), show(t.KeyFile), err))
			} else {
				tc.Certificates = []tls.Certificate{cert}
			}
		}
	case t.CertFile != "":
		errs = append(errs, c.fieldError("tls.cert_file", "given without tls.key_file: set both for a client certificate, or neither"))
	case t.KeyFile != "":
		errs = append(errs, c.fieldError("tls.key_file", "given without tls.cert_file: set both for a client certificate, or neither"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return tc, nil
}

// readPEM reads a TLS file: a regular file of at most MaxPEMFileSize.
func readPEM(path string) ([]byte, error) {
	data, err := readBounded(path, MaxPEMFileSize)
	var be *boundError
	var pe *fs.PathError
	switch {
	case errors.As(err, &be):
		return nil, fmt.Errorf("%s %s", show(path), be.msg)
	case errors.As(err, &pe):
		return nil, fmt.Errorf("%s %s: %w", pe.Op, show(pe.Path), pe.Err)
	}
	return data, err
}

func (c *Config) saslMechanism() (sasl.Mechanism, error) {
	s := c.SASL
	if s.PasswordEnv == "" {
		return nil, c.fieldError("sasl.password_env", "required: the name of the environment variable that holds the SASL password")
	}
	pass := os.Getenv(s.PasswordEnv)
	if pass == "" {
		return nil, c.fieldError("sasl.password_env", "environment variable %s is not set or empty: export it with the password of SASL user %s", s.PasswordEnv, quoteCut(s.Username))
	}
	switch strings.ToUpper(s.Mechanism) {
	case MechanismPlain:
		return plain.Auth{User: s.Username, Pass: pass}.AsMechanism(), nil
	case MechanismScramSHA256:
		return scram.Auth{User: s.Username, Pass: pass}.AsSha256Mechanism(), nil
	case MechanismScramSHA512:
		return scram.Auth{User: s.Username, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, c.fieldError("sasl.mechanism", "must be one of %s, got %s", strings.Join(mechanisms, ", "), quoteCut(s.Mechanism))
}

// ConnectError explains err, an error from a client built with ClientOpts
// (a failed Ping or first request), with what was used to connect: the
// brokers, TLS, and the SASL mechanism, user and the variable the password
// came from, never the password. A broker that rejects a login may just close
// the connection, which the client reports as a bare EOF; this says what to
// check. It returns nil for a nil err and wraps err otherwise.
func (c *Config) ConnectError(err error) error {
	if err == nil {
		return nil
	}
	var how, check []string
	check = append(check, "that the brokers are reachable")
	if c.TLS != nil {
		how = append(how, "over TLS")
		check = append(check, "the TLS settings")
	}
	if c.SASL != nil {
		how = append(how, fmt.Sprintf("as SASL user %s (%s, password from %s)", quoteCut(c.SASL.Username), c.SASL.Mechanism, c.SASL.PasswordEnv))
		check = append(check, fmt.Sprintf("the user name and the password in %s", c.SASL.PasswordEnv))
	}
	brokers := strings.Join(c.Brokers, ",")
	if len(how) > 0 {
		brokers += " " + strings.Join(how, " ")
	}
	last := len(check) - 1
	list := check[last]
	if last > 0 {
		list = strings.Join(check[:last], ", ") + " and " + check[last]
	}
	return &connectError{msg: fmt.Sprintf("cannot connect to %s: %v: check %s", brokers, err, list), err: err}
}

type connectError struct {
	msg string
	err error
}

func (e *connectError) Error() string { return e.msg }
func (e *connectError) Unwrap() error { return e.err }
