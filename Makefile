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

# The Python with moto[server] 5.2.1 and cfn-lint: tools/python-env.sh prints it, making the
# virtual environment .venv/ where python3 lacks them. WITH_PYTHON runs a recipe's command
# with it: named in AMIFLEET_PYTHON for the local cloud, and a virtual environment's bin/
# first on the PATH, so that the tests' python3 is the same one.
WITH_PYTHON = py=$$(tools/python-env.sh) && export AMIFLEET_PYTHON="$$py" && \
	{ [ ! -f "$${py%/*}/activate" ] || export PATH="$${py%/*}:$$PATH"; } &&

.PHONY: all build test lint check-tools clean

all: build

## build: one bootstrap and one zip per Lambda under build/$(ARCH)/ (ARCH=arm64 by default)
build: $(ZIPS)

$(BUILD)/%.zip: $(GOFILES) go.mod go.sum
	@mkdir -p $(BUILD)/$*
	GOOS=linux GOARCH=$(ARCH) CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath \
		-ldflags "-s -w" -o $(BUILD)/$*/bootstrap ./lambdas/$*
	$(GO) run ./tools/lambdazip -o $@ $(BUILD)/$*/bootstrap

# The GitHub Actions workflows that actionlint checks (with shellcheck on their run: scripts).
WORKFLOWS := events/github-actions.yml $(wildcard .github/workflows/*.yml .github/workflows/*.yaml)
ACTIONLINT_VERSION := v1.7.12

## lint: gofmt, go vet, staticcheck, shellcheck, actionlint
lint: check-tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...
	shellcheck $$(git ls-files '*.sh' .ci/run)
	actionlint $(WORKFLOWS)

## test: every test (unit, moto, ASL, CDK, end to end in the local cloud)
test: lint cdk-test
	$(WITH_PYTHON) $(GO) test -count=1 -timeout 30m ./...

## check-tools: installs what `make test` needs where that asks nobody, or stops with the one command to run
# (go install; apt-get as root or with sudo without a password; moto and cfn-lint in .venv/ where python3 lacks them)
check-tools:
	@./tools/check-tools.sh
	@command -v staticcheck >/dev/null || { echo "installing staticcheck"; GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2; }
	@command -v actionlint >/dev/null || { echo "installing actionlint"; GOFLAGS= $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION); }
	@./tools/install-shellcheck.sh
	@./tools/python-env.sh >/dev/null

clean:
	rm -rf build cdk.out cdk/cdk.out

# ---- CDK: the stack in cdk/ (its own Go module), through the CLI pinned in package.json.
CDK      := node_modules/.bin/cdk
# Go's ARCH names the zips' folder; the stack's context names the Lambda architecture.
CDK_ARCH := $(if $(filter amd64,$(ARCH)),x86_64,arm64)
# SCHEDULE="cron(0 6 * * ? *)" makes `make deploy` add the schedule (events/scheduled-input.json).
# REFRESH_SCHEDULE="cron(0 2 * * ? *)" adds a nightly refresh of the run in events/scheduled-refresh-input.json.
CDK_CONTEXT := -c arch=$(CDK_ARCH) $(if $(SCHEDULE),-c 'schedule=$(SCHEDULE)') $(if $(REFRESH_SCHEDULE),-c 'refreshSchedule=$(REFRESH_SCHEDULE)')
# `make deploy APPROVAL=never` skips the CLI's question about IAM changes.
APPROVAL ?= broadening

.PHONY: synth deploy destroy cdk-test

$(CDK): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## synth: the CloudFormation template and assets under cdk.out/ (Lambdas from build/$(ARCH)/)
synth: $(ZIPS) $(CDK)
	$(CDK) synth -q $(CDK_CONTEXT)

## deploy: bootstrap the account of your AWS credentials (once), then deploy the stack — docs/deploy.md
deploy: $(ZIPS) $(CDK)
	$(CDK) bootstrap $(CDK_CONTEXT)
	$(CDK) deploy $(CDK_CONTEXT) --require-approval $(APPROVAL)

## destroy: remove the stack (and, with it, its functions, state machines, roles and logs)
destroy: $(ZIPS) $(CDK)
	$(CDK) destroy --force $(CDK_CONTEXT)

## cdk-test: cfn-lint on the synthesized template, then vet and the assertions/cdk-nag tests in cdk/
# W3005: the CDK makes each function and state machine DependsOn its role as well as
# the role's policy; the role half is redundant with the Role GetAtt, and harmless.
cdk-test: synth check-tools
	cfnlint=$$(tools/python-env.sh --cfn-lint) && "$$cfnlint" --ignore-checks W3005 -- cdk.out/AmiFleet.template.json
	cd cdk && $(GO) vet ./... && staticcheck ./... && $(GO) test -count=1 ./...

# ---- The local cloud: the whole pipeline on this machine (moto, the gateway, the stack).
.PHONY: local

## local: build, deploy into the local cloud, run events/local-input.json, print what it made, stop
# (LOCAL_FLAGS="--port 4567 --input FILE" for another port or input)
local:
	$(WITH_PYTHON) $(GO) run ./cmd/amifleet local run $(LOCAL_FLAGS)

# ---- Benchmarks: slow (the local cloud and five pipeline runs), so not part of `make test`;
# their pure parts (history counting, target checks, estimates, plot) are unit-tested there.
.PHONY: bench

## bench: Lambda sizes, cold starts and memory, CDK synth, pipeline runs at 1-200 replicas in the local cloud, runs of 2 and 50 replicas under AWS's timing against their physical limit, and a Refresh of such runs against its own; checks the targets; writes docs/benchmarks.md, docs/benchmarks.png and docs/benchmarks-timeline.svg
# LENIENT=iam,quota (or all) turns strict checks of the local cloud off.
bench:
	$(WITH_PYTHON) $(GO) run ./bench $(if $(LENIENT),-lenient $(LENIENT))
