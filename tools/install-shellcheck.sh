#!/usr/bin/env bash
# Installs shellcheck for `make lint` when it is missing: Debian/Ubuntu through apt-get
# (as root, or with sudo), macOS through Homebrew. Anything else gets a clear message.
set -euo pipefail

if command -v shellcheck >/dev/null; then
	exit 0
fi
echo "shellcheck is missing: installing it"
if command -v apt-get >/dev/null; then
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null; then
			echo "shellcheck is missing and this user cannot install it: run 'apt-get install shellcheck' as root" >&2
			exit 1
		fi
		sudo="sudo"
	fi
	# A fresh machine's package lists may be stale or absent: refresh them once, then install.
	$sudo apt-get install -y -qq shellcheck >/dev/null 2>&1 ||
		{ $sudo apt-get update -qq && $sudo apt-get install -y -qq shellcheck; }
elif command -v brew >/dev/null; then
	brew install shellcheck
else
	echo "shellcheck is missing: install it from https://github.com/koalaman/shellcheck#installing" >&2
	exit 1
fi
command -v shellcheck >/dev/null || { echo "shellcheck did not install" >&2; exit 1; }
