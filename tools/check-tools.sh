#!/usr/bin/env bash
# Checks the tools `make test` needs besides those the Makefile installs itself
# (staticcheck and actionlint with go install, shellcheck with install-shellcheck.sh,
# the CDK CLI and the IAM evaluator with npm ci, moto and cfn-lint with python-env.sh):
# Go, git, Node.js 18 or later with npm. git, Node.js and npm are installed with apt-get
# where that asks nobody (apt-install.sh); anything else stops with the one command to run.
set -euo pipefail

tools=$(dirname "$0")
go_version=$(sed -n 's/^go //p' "$tools/../go.mod")

command -v go >/dev/null ||
	{ echo "Go is missing: install Go $go_version (go.mod) from https://go.dev/dl/ and put its bin/ on the PATH" >&2; exit 1; }
if ! command -v git >/dev/null; then
	"$tools/apt-install.sh" git ||
		{ echo "git is missing: run 'sudo apt-get install git' (or see https://git-scm.com/downloads)" >&2; exit 1; }
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	"$tools/apt-install.sh" nodejs npm ||
		{ echo "Node.js and npm are missing: install Node.js 20 from https://nodejs.org/en/download (npm comes with it)" >&2; exit 1; }
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
	echo "Node.js $(node --version) is too old for the CDK CLI: install Node.js 20 from https://nodejs.org/en/download" >&2
	exit 1
fi
