# amifleet — see README.md. `make local` runs the pipeline in the local cloud;
# `make test` runs every test; `make deploy` puts the stack on a real AWS account.

GO      ?= go
# Lambdas run on Graviton (arm64) on AWS; `make local` builds for this machine.
ARCH    ?= arm64
LAMBDAS := $(notdir $(wildcard lambdas/*))
# One folder per architecture, so switching ARCH never reuses the other's binaries.
BUILD   := build/$(ARCH)
ZIPS    := $(LAMBDAS:%=$(BUILD)/%.zip)
GOFILES := $(shell find . -name '*.go' -not -path './cdk/*' -not -path './node_modules/*')

# Tools that `go install` puts in GOPATH/bin (staticcheck) are found without a PATH change.
export PATH := $(PATH):$(shell $(GO) env GOPATH)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20

.PHONY: all build test lint check-tools clean

all: build

## build: one bootstrap and one zip per Lambda under build/$(ARCH)/ (ARCH=arm64 by default)
build: $(ZIPS)

$(BUILD)/%.zip: $(GOFILES) go.mod go.sum
	@mkdir -p $(BUILD)/$*
	GOOS=linux GOARCH=$(ARCH) CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath \
		-ldflags "-s -w" -o $(BUILD)/$*/bootstrap ./lambdas/$*
	$(GO) run ./tools/lambdazip -o $@ $(BUILD)/$*/bootstrap

## lint: gofmt, go vet, staticcheck, shellcheck
lint: check-tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...
	shellcheck $$(git ls-files '*.sh' .ci/run)

## test: every test (unit, moto, ASL, CDK, end to end in the local cloud)
test: lint
	$(GO) test -count=1 ./...

check-tools:
	@command -v staticcheck >/dev/null || { echo "installing staticcheck"; GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2; }
	@command -v shellcheck >/dev/null || { echo "shellcheck is missing: apt-get install shellcheck (Debian/Ubuntu) or brew install shellcheck"; exit 1; }

clean:
	rm -rf build cdk.out cdk/cdk.out
