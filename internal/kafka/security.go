package kafka

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// securityOpts returns the TLS and SASL options of kafka.tls and kafka.sasl. config.Load has
// already read the certificate files and checked the password variable, so errors here are rare
// (a file removed since) and name the key.
func securityOpts(cfg *config.Config) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	tc, err := cfg.Kafka.TLS.Config()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	s := cfg.Kafka.SASL
	switch strings.ToUpper(s.Mechanism) {
	case config.SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password()}.AsMechanism()))
	case config.SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password()}.AsSha256Mechanism()))
	case config.SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password()}.AsSha512Mechanism()))
	}
	return opts, nil
}
