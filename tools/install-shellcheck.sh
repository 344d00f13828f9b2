#!/usr/bin/env bash
# Installs shellcheck for `make lint` when it is missing: Debian/Ubuntu through apt-get
# (as root, or with sudo that needs no password: apt-install.sh), macOS through Homebrew.
# Anything else gets the one command to run.
set -euo pipefail

if command -v shellcheck >/dev/null; then
	exit 0
fi
echo "shellcheck is missing: installing it"
if command -v apt-get >/dev/null; then
	"$(dirname "$0")/apt-install.sh" shellcheck ||
		{ echo "shellcheck is missing and this user cannot install it: run 'sudo apt-get install shellcheck'" >&2; exit 1; }
elif command -v brew >/dev/null; then
	brew install shellcheck
else
	echo "shellcheck is missing: install it from https://github.com/koalaman/shellcheck#installing" >&2
	exit 1
fi
command -v shellcheck >/dev/null || { echo "shellcheck did not install" >&2; exit 1; }
