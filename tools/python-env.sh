#!/usr/bin/env bash
# Prints the Python that `make` and the local cloud use: one with moto[server] 5.2.1 (the
# local cloud's AWS control plane) and with cfn-lint beside it or on the PATH. With
# --cfn-lint it prints that cfn-lint instead.
#
# The first that has both: $AMIFLEET_PYTHON; the project's virtual environment (.venv/,
# or $AMIFLEET_VENV) as installed from tools/python-requirements.txt; python3. When none
# has them, it makes the virtual environment and installs the pinned versions into it
# (Debian and Ubuntu refuse pip installs into the system Python), with Python's venv
# module from apt-get when it is missing (apt-install.sh). Anything else stops with the
# one command to run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
requirements=$root/tools/python-requirements.txt
venv=${AMIFLEET_VENV:-$root/.venv}
# What the virtual environment was last installed from: a change to the pins reinstalls.
stamp=$venv/amifleet-requirements.txt
moto_version=5.2.1

mode=python
case "${1:-}" in
"") ;;
--cfn-lint) mode=cfn-lint ;;
*)
	echo "usage: $0 [--cfn-lint]" >&2
	exit 2
	;;
esac

fail() {
	echo "$*" >&2
	exit 1
}

# has_moto PYTHON: moto at the pinned version, with its server's extras.
has_moto() {
	local version
	version=$("$1" -c 'import importlib.metadata as m, flask, werkzeug; print(m.version("moto"))' 2>/dev/null) &&
		[ "$version" = "$moto_version" ]
}

# cfn_lint PYTHON: prints the cfn-lint installed beside PYTHON, else the one on the PATH.
cfn_lint() {
	if [ -x "$(dirname "$1")/cfn-lint" ]; then
		echo "$(dirname "$1")/cfn-lint"
	else
		command -v cfn-lint
	fi
}

# use PYTHON: prints what was asked for if PYTHON has moto and cfn-lint, and ends there.
use() {
	if has_moto "$1" && cfn_lint "$1" >/dev/null; then
		if [ "$mode" = cfn-lint ]; then cfn_lint "$1"; else echo "$1"; fi
		exit 0
	fi
}

if [ -n "${AMIFLEET_PYTHON:-}" ]; then
	python=$(command -v "$AMIFLEET_PYTHON") || fail "AMIFLEET_PYTHON=$AMIFLEET_PYTHON: not found"
	use "$python"
	fail "AMIFLEET_PYTHON=$AMIFLEET_PYTHON lacks moto[server] $moto_version or cfn-lint: run '$AMIFLEET_PYTHON -m pip install -r tools/python-requirements.txt', or unset AMIFLEET_PYTHON"
fi
if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; then
	use "$venv/bin/python"
fi
python3=$(command -v python3) || {
	"$root/tools/apt-install.sh" python3 python3-venv || fail "python3 is missing: install Python 3.11 ('sudo apt-get install python3 python3-venv' on Debian and Ubuntu), then run make again"
	python3=$(command -v python3) || fail "python3 did not install"
}
use "$python3"

echo "$python3 lacks moto[server] $moto_version or cfn-lint: installing them into $venv (tools/python-requirements.txt)" >&2
if ! "$python3" -c 'import venv, ensurepip' 2>/dev/null; then
	"$root/tools/apt-install.sh" python3-venv || fail "Python's venv module is missing: run 'sudo apt-get install python3-venv', then run make again"
	"$python3" -c 'import venv, ensurepip' 2>/dev/null || fail "Python's venv module did not install: run 'sudo apt-get install python3-venv', then run make again"
fi
"$python3" -m venv "$venv" >&2 || fail "$python3 -m venv $venv failed (see above): remove $venv and run make again"
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements" >&2 ||
	fail "could not install tools/python-requirements.txt into $venv (see above; pip needs PyPI or your PIP_INDEX_URL): run '$venv/bin/python -m pip install -r tools/python-requirements.txt' once it is reachable, then run make again"
cp "$requirements" "$stamp"
use "$venv/bin/python"
fail "$venv/bin/python still lacks moto[server] $moto_version or cfn-lint after installing tools/python-requirements.txt"
