# kretry — make targets. `make test` is what CI runs (.ci/run).
#
#   make demo              kretry end to end on an embedded broker
#   make test              vet + staticcheck + unit tests (race) + integration tests on a real Apache Kafka broker
#   make test-unit         vet + unit tests (race)
#   make test-integration  integration tests on $KRETRY_BROKERS, or on the broker of `make kafka-up`
#   make kafka-up          start (or reuse) the local broker; last line: KRETRY_BROKERS=127.0.0.1:PORT
#   make kafka-down        stop it and remove its data
#   make bench             the benchmarks
#   make fuzz              every fuzz target for FUZZTIME (30s) each
#   make chaos             the fault suite: kill -9, broker restarts, rebalances, a 3-node cluster; writes RELIABILITY.md
#   make lint              gofmt, go vet, staticcheck

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
KAFKA := scripts/kafka/kafka.sh
# Each test binary (one per package) fails with its goroutine dump when it runs
# longer than this, so a hung test fails within minutes instead of hanging CI.
UNIT_TIMEOUT ?= 5m
# Integration tests of every package run against one broker; the slowest
# package takes about three minutes.
INTEGRATION_TIMEOUT ?= 10m
# Every fuzz target (a Fuzz function in any package) runs this long in make fuzz.
FUZZTIME ?= 30s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# staticcheck over every package, with and without the integration tag: make
# test and make lint both run it.
RUN_STATICCHECK = $(GO) run $(STATICCHECK) ./...; $(GO) run $(STATICCHECK) -tags integration ./...

# go test -v with a summary line that counts panics, timeouts and build
# failures as failures.
GOTEST := bash scripts/gotest.sh

.PHONY: help test test-unit test-integration kafka-up kafka-down demo bench fuzz lint vet

help:
	@sed -n 's/^#   //p' Makefile

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./...

test-unit: vet
	@$(GOTEST) "unit tests" -race -timeout $(UNIT_TIMEOUT) ./...

# test brings the broker up first (so a restart of a shared one is short), then
# vet, staticcheck (a deprecation or a lint finding fails it, as make lint does),
# unit and integration tests. It stops the broker afterwards, pass or
# fail, only if it started it: a running broker (someone's `make kafka-up`) or
# KRETRY_BROKERS is left alone. The integration pass runs the tests of the
# files built with the integration tag and those the unit pass skipped
# (scripts/integration-run.sh), not again the unit tests that passed: with
# -tags integration ./... runs those too.
test:
	@t0=$$(date +%s); started=; release=; brokers=$${KRETRY_BROKERS:-}; \
	if [[ -z $$brokers ]]; then \
		if line=$$($(KAFKA) status 2>/dev/null); then \
			brokers=$${line#KRETRY_BROKERS=}; echo "using the running broker $$brokers"; \
		else \
			line=$$($(KAFKA) up | tail -n 1); started=1; brokers=$${line#KRETRY_BROKERS=}; \
		fi; \
		release=$$($(KAFKA) version); \
	fi; \
	unitlog=$$(mktemp); trap 'rm -f "$$unitlog"; if [[ -n $$started ]]; then $(KAFKA) down || true; fi' EXIT; \
	echo "+ $(GO) vet ./... (and -tags integration)"; \
	$(GO) vet ./...; $(GO) vet -tags integration ./...; \
	echo "+ staticcheck ./... (and -tags integration)"; \
	$(RUN_STATICCHECK); \
	echo "+ $(GO) test -race -count=1 -timeout $(UNIT_TIMEOUT) ./..."; \
	$(GOTEST) "unit tests" -race -count=1 -timeout $(UNIT_TIMEOUT) ./... | tee "$$unitlog"; \
	run=$$(bash scripts/integration-run.sh "$$unitlog"); \
	echo "+ KRETRY_BROKERS=$$brokers $(GO) test -race -count=1 -tags integration -timeout $(INTEGRATION_TIMEOUT) -v -run '<the integration tests>' ./..."; \
	status=0; \
	KRETRY_BROKERS=$$brokers KRETRY_KAFKA_VERSION=$$release $(GOTEST) "integration tests (with subtests)" \
		-race -count=1 -tags integration -timeout $(INTEGRATION_TIMEOUT) -run "$$run" ./... || status=$$?; \
	echo "make test took $$(( $$(date +%s) - t0 ))s"; \
	exit $$status

test-integration:
	@release=; brokers=$${KRETRY_BROKERS:-}; \
	if [[ -z $$brokers ]]; then \
		line=$$($(KAFKA) up | tail -n 1); brokers=$${line#KRETRY_BROKERS=}; \
		echo "the broker stays up for the next run; stop it with: make kafka-down"; \
		release=$$($(KAFKA) version); \
	fi; \
	KRETRY_BROKERS=$$brokers KRETRY_KAFKA_VERSION=$$release $(GOTEST) "integration tests (with subtests)" \
		-race -count=1 -tags integration -timeout $(INTEGRATION_TIMEOUT) ./...

kafka-up:
	@$(KAFKA) up

kafka-down:
	@$(KAFKA) down

demo:
	$(GO) run ./cmd/kretry demo

# The bench issue fills this in: scripts/bench.sh if it exists, else the bench
# program under internal/bench/cmd.
bench:
	@if [[ -f scripts/bench.sh ]]; then bash scripts/bench.sh; \
	elif compgen -G 'internal/bench/cmd/*.go' >/dev/null; then $(GO) run ./internal/bench/cmd; \
	else echo "make bench: no benchmarks yet (scripts/bench.sh or internal/bench/cmd will provide them)"; fi

# fuzz runs every fuzz target of every package for FUZZTIME each.
fuzz:
	@found=0; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			found=1; echo "+ $(GO) test -run '^$$' -fuzz '^$$f$$' -fuzztime $(FUZZTIME) $$pkg"; \
			$(GO) test -run '^$$' -fuzz '^'$$f'$$' -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done; \
	if [[ $$found == 0 ]]; then echo "make fuzz: no fuzz targets found"; exit 1; fi

# chaos starts its own brokers (scripts/kafka/cluster.sh) and stops them when
# done; the broker of make kafka-up is neither used nor stopped.
.PHONY: chaos
chaos:
	$(GO) run ./internal/chaos/cmd/chaos

lint: vet
	cd internal/kafkatest/dockerkafka && $(GO) vet ./...
	@out=$$(gofmt -l .); if [[ -n $$out ]]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	$(RUN_STATICCHECK)
