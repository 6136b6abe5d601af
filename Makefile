# OpenUTM: `make demo` runs the whole system in a namespace lab, `make test`
# runs every test. Both need root (namespaces, iptables, NFQUEUE) and
# install what they miss. `make help` lists the targets.

SHELL     := /bin/bash
GO        ?= go
BIN       := bin
APT_PKGS  := gcc pkg-config libyara-dev libpcre2-dev libvectorscan-dev iptables iproute2 procps \
             swaks dovecot-imapd dovecot-pop3d clamav-testfiles chromium chromium-driver \
             dnsmasq-base
# The lab and the tests need seconds, not hours; CI allows 90 minutes.
TEST_TIMEOUT ?= 60m

.PHONY: help deps build test demo bench bench-av fmt vet clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

deps: ## install missing Debian packages and download the pinned Go modules
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed: install it from https://go.dev/dl and put go in PATH"; exit 1; }
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		[ $$(id -u) -eq 0 ] || { echo "run as root (sudo make ...) to install:" $$missing; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	$(GO) mod download

build: deps ## build bin/utmd (the box), bin/monitor (the central monitor) and the lab tools
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/utmd ./firmware/cmd/utmd
	$(GO) build -o $(BIN)/monitor ./telemetry/cmd/monitor
	$(GO) build -o $(BIN)/labhost ./hack/labhost
	$(GO) build -o $(BIN)/demo ./hack/demo

test: build ## run every test, lab tests included, with the race detector (as root)
	UTM_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

demo: build ## run the five demo cases through the box in a namespace lab (as root)
	$(BIN)/demo -bin $(BIN) -dir out/demo

bench: deps ## Go micro-benchmarks, then the lab benchmark in namespaces (root, ~5 min; out/bench*.txt); SOAK=60s adds the utmd memory soak (default 10m)
	hack/bench/run
	hack/bench/lab
	@if [ -n "$(SOAK)" ]; then hack/bench/soak "$(SOAK)"; fi

bench-av: deps ## AV scan throughput vs clamscan on the same rules and corpus (installs clamav; needs ../shared)
	hack/bench/av/run

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

vet: ## go vet and a gofmt check
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run make fmt"; exit 1; }

clean: ## remove bin/ and out/
	rm -rf $(BIN) out
