#!/usr/bin/env bash
# Installs Debian or Ubuntu packages for `make` where that asks nobody: as root, or with
# sudo that needs no password. Where it cannot (no apt-get, no such right) it exits 1
# without a word, and its caller names the one command to run.
set -euo pipefail

command -v apt-get >/dev/null || exit 1
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
		exit 1
	fi
	sudo="sudo -n"
fi
echo "installing $* with apt-get" >&2
# A fresh machine's package lists may be stale or absent: refresh them once, then install.
$sudo apt-get install -y -qq "$@" >/dev/null 2>&1 ||
	{ $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@"; } >&2
