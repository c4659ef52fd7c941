package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
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
// came from, never the password. Where the error shows its cause (a
// broker's certificate from an unknown CA, a broker that wants a client
// certificate, TLS against a plaintext listener or plaintext against a TLS
// one, a refused login), the message names that cause and the setting to
// change, and the returned *ConnectionError's Setting names it too. It
// returns nil for a nil err and wraps err otherwise.
func (c *Config) ConnectError(err error) error {
	if err == nil {
		return nil
	}
	brokers := strings.Join(c.Brokers, ",")
	if setting, msg := c.diagnose(brokers, err); msg != "" {
		return &ConnectionError{Setting: setting, msg: fmt.Sprintf("%s (%v)", msg, err), err: err}
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
	if len(how) > 0 {
		brokers += " " + strings.Join(how, " ")
	}
	last := len(check) - 1
	list := check[last]
	if last > 0 {
		list = strings.Join(check[:last], ", ") + " and " + check[last]
	}
	return &ConnectionError{msg: fmt.Sprintf("cannot connect to %s: %v: check %s", brokers, err, list), err: err}
}

// ConnectionError is the error of ConnectError.
type ConnectionError struct {
	// Setting is the setting of the config to change, e.g. "tls.ca_file"
	// or "tls", when the cause is known; "" otherwise.
	Setting string

	msg string
	err error
}

func (e *ConnectionError) Error() string { return e.msg }
func (e *ConnectionError) Unwrap() error { return e.err }

// diagnose returns the setting to change and a sentence saying what is
// wrong, for the errors whose cause is clear; "" otherwise.
func (c *Config) diagnose(brokers string, err error) (setting, msg string) {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var notTLS tls.RecordHeaderError
	var firstEOF *kgo.ErrFirstReadEOF
	text := err.Error()
	remote := func(alerts ...string) bool {
		for _, a := range alerts {
			if strings.Contains(text, "remote error: tls: "+a) {
				return true
			}
		}
		return false
	}
	switch {
	case c.TLS != nil && errors.As(err, &unknownCA):
		if c.TLS.CAFile == "" {
			return "tls.ca_file", fmt.Sprintf("the TLS certificate of Kafka at %s is signed by a CA the system does not trust: set tls.ca_file to the PEM file of the CA that signed the brokers' certificates", brokers)
		}
		return "tls.ca_file", fmt.Sprintf("the TLS certificate of Kafka at %s is not signed by a CA in tls.ca_file %s: set tls.ca_file to the PEM file of the CA that signed the brokers' certificates", brokers, show(c.TLS.CAFile))
	case c.TLS != nil && errors.As(err, &hostErr):
		return "brokers", fmt.Sprintf("the TLS certificate of Kafka at %s is not valid for the name %s: list the brokers by a name or address their certificate holds", brokers, show(hostErr.Host))
	case c.TLS != nil && errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "", fmt.Sprintf("the TLS certificate of Kafka at %s has expired or is not valid yet: renew the brokers' certificate, or check this machine's clock", brokers)
	case c.TLS != nil && c.TLS.CertFile == "" && remote("certificate required", "bad certificate", "handshake failure", "certificate unknown"):
		return "tls.cert_file", fmt.Sprintf("Kafka at %s requires a client certificate (mutual TLS) and none was sent: set tls.cert_file and tls.key_file to the client certificate and its key", brokers)
	case c.TLS != nil && remote("bad certificate", "unknown certificate authority", "certificate unknown", "certificate required", "access denied"):
		return "tls.cert_file", fmt.Sprintf("Kafka at %s refused the client certificate in tls.cert_file %s: use a client certificate signed by a CA the brokers trust", brokers, show(c.TLS.CertFile))
	case c.TLS != nil && (errors.As(err, &notTLS) || errors.As(err, &firstEOF) && strings.Contains(text, "after a dial") ||
		errors.Is(err, syscall.ECONNRESET) && strings.Contains(text, "unable to dial")):
		return "tls", fmt.Sprintf("Kafka at %s closed the connection when the TLS handshake began, as a plaintext listener does: the listener does not speak TLS; remove the tls section for a plaintext listener, or list the brokers' TLS listener in brokers", brokers)
	case c.TLS == nil && errors.As(err, &firstEOF) && strings.Contains(text, "api versions"):
		return "tls", fmt.Sprintf("Kafka at %s closed the connection at the first request, as a TLS listener does when a client speaks plaintext: add a tls section (tls: {} trusts the system's CAs; tls.ca_file names others)", brokers)
	case c.SASL == nil && errors.As(err, &firstEOF) && strings.Contains(text, "after a request"):
		after := "its first answer"
		if c.TLS != nil {
			after = "the TLS handshake"
		}
		return "sasl", fmt.Sprintf("Kafka at %s closed the connection after %s, as brokers do that want SASL: add a sasl section", brokers, after)
	case c.SASL == nil && c.TLS == nil && errors.As(err, &firstEOF):
		return "sasl", fmt.Sprintf("Kafka at %s closed the connection at the first request, as brokers do that want TLS or SASL: add the tls or the sasl section the listener needs", brokers)
	case c.SASL != nil && (errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState)):
		return "sasl", fmt.Sprintf("Kafka at %s refused the login of SASL user %s (%s): check sasl.username and the password in %s", brokers, quoteCut(c.SASL.Username), c.SASL.Mechanism, c.SASL.PasswordEnv)
	case c.SASL != nil && errors.Is(err, kerr.UnsupportedSaslMechanism):
		return "sasl.mechanism", fmt.Sprintf("Kafka at %s does not take SASL mechanism %s: set sasl.mechanism to one the listener enables", brokers, c.SASL.Mechanism)
	}
	return "", ""
}
