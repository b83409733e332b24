# Parley: `make run` starts the gateway on the embedded defaults,
# `make test` runs every test (PostgreSQL too when PARLEY_TEST_POSTGRES_URL
# is set, as .ci/run does).
GO        ?= go
# `make deps` (scripts/deps.sh) installs the Debian packages, Go modules and
# the npm test client the project needs.
STATICCHECK_VERSION := v0.8.2

.PHONY: deps run test bench lint fuzz testdata widget clean

deps:
	@./scripts/deps.sh

# The demo page (/demo) is on for `make run` only: it mints session keys
# for anyone who can reach the gateway.
run: deps
	PARLEY_WIDGET_DEMO=$${PARLEY_WIDGET_DEMO:-true} $(GO) run ./cmd/parleyd $(ARGS)

test: deps
	$(GO) test -race -count=1 -timeout 12m ./...

bench: deps
	$(GO) run ./bench/gatewaybench $(ARGS)
	$(GO) run ./bench/voicebench
	$(GO) run ./bench/replaybench
	$(GO) run ./bench/callbench
	$(GO) run ./bench/authbench
	$(GO) run ./bench/sealbench
	$(GO) run ./bench/sweepbench

lint: deps
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Run each fuzz target (realtime events, SDP offers, redaction, text metadata,
# session recordings)
# for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./realtime
	$(GO) test -run '^$$' -fuzz '^FuzzCheckOffer$$' -fuzztime $(FUZZTIME) ./rtc
	$(GO) test -run '^$$' -fuzz '^FuzzRedact$$' -fuzztime $(FUZZTIME) ./privacy/redact
	$(GO) test -run '^$$' -fuzz '^FuzzParseMasterKeys$$' -fuzztime $(FUZZTIME) ./storage/seal
	$(GO) test -run '^$$' -fuzz '^FuzzLanguage$$' -fuzztime $(FUZZTIME) ./privacy/textmeta
	$(GO) test -run '^$$' -fuzz '^FuzzSentiment$$' -fuzztime $(FUZZTIME) ./privacy/textmeta
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./recording

# Rebuild web/widget.js from web/widget/src (esbuild's Go API) and
# type-check the sources; commit the result (a test fails when it is stale).
widget: deps
	$(GO) generate ./web
	cd web/widget && node_modules/.bin/tsc --noEmit -p .

# Regenerate the spoken fixtures in testdata/audio (espeak-ng, sox, opusenc)
# and the session recordings made from them in testdata/sessions.
testdata: deps
	./scripts/make-testdata.sh
	./scripts/make-sessions.sh

clean:
	rm -rf data/
