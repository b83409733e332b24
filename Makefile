# Parley: `make run` starts the gateway on the embedded defaults,
# `make test` runs every test (PostgreSQL too when PARLEY_TEST_POSTGRES_URL
# is set, as .ci/run does).
GO        ?= go
# Debian packages the build and tests need (the voice issues add libopus,
# pocketsphinx and espeak-ng here). Node.js/npm run the openai npm client test.
DEB_PKGS  := ca-certificates nodejs npm
NPM_DIR   := test/npmclient
STATICCHECK_VERSION := v0.8.2

.PHONY: deps run test bench lint fuzz clean

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "deps: installing$$missing"; \
	    (apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
	     (apt-get update >/dev/null && apt-get install -y --no-install-recommends $$missing >/dev/null)) || exit 1; \
	  else \
	    echo "deps: please install:$$missing (sudo apt-get install$$missing)"; exit 1; \
	  fi; \
	fi
	@$(GO) mod download
	@if [ ! -d $(NPM_DIR)/node_modules/openai ]; then \
	  echo "deps: npm ci in $(NPM_DIR)"; \
	  (cd $(NPM_DIR) && npm ci --no-audit --no-fund --loglevel=error) || exit 1; \
	fi

run: deps
	$(GO) run ./cmd/parleyd $(ARGS)

test: deps
	$(GO) test -race -count=1 -timeout 12m ./...

bench: deps
	$(GO) run ./bench/gatewaybench $(ARGS)

lint: deps
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Run each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./realtime

clean:
	rm -rf data/
