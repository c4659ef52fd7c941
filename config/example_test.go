package config_test

import (
	"fmt"

	"github.com/kretry/kretry/config"
)

func ExampleParse() {
	cfg, err := config.Parse([]byte(`
brokers: ["127.0.0.1:9092"]
group: orders-service
topics:
  - name: orders
    tiers:
      - delay: 5s
      - delay: 1m
      - delay: 10m
        attempts: 2
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	ladders, err := cfg.Ladders()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range ladders[0].Steps() {
		fmt.Printf("%s: %d attempt(s), keep %v\n", s.Topic, s.Attempts, cfg.Topics[0].RetentionForTier(s.Delay))
	}
	fmt.Printf("%s: keep %v\n", ladders[0].DLQ(), cfg.Topics[0].RetentionForDLQ())
	// Output:
	// orders.retry-5s: 1 attempt(s), keep 24h0m0s
	// orders.retry-1m: 1 attempt(s), keep 24h0m0s
	// orders.retry-10m: 2 attempt(s), keep 24h0m0s
	// orders.dlq: keep 336h0m0s
}

// Every problem of a file is reported at once, in file order.
func ExampleParse_errors() {
	_, err := config.Parse([]byte(`brokers: ["127.0.0.1:9092"]
group: orders-service
topics:
  - name: orders
    tiers:
      - delay: 5s
      - delay: -1m
      - delay: 1m
        attempts: 0
    naming: "{topic}.retry"
`))
	fmt.Println(err)
	// Output:
	// line 7: topics[0].tiers[1].delay: must be > 0, got -1m
	// line 9: topics[0].tiers[2].attempts: must be ≥ 1 (omit it for the default 1), got 0
	// line 10: topics[0].naming: must contain {delay} or {index} so that each tier gets its own topic, got "{topic}.retry"
}
