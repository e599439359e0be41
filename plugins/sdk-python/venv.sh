#!/usr/bin/env bash
# Makes sure the Python plugin toolchain is installed: a venv (default
# target/python/venv of the repository, or $TEND_PY_VENV) holding exactly the pinned
# requirements.txt from PyPI (componentize-py, mypy). Prints the venv's directory.
#
# Safe to run again and from parallel builds: a lock serialises them, and a stamp
# holding the requirements' checksum makes a run with nothing to do a no-op.
# Needs python3 with the venv module (Debian: python3-venv; scripts/setup.sh
# installs it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${TEND_PY_VENV:-$repo/target/python/venv}"
req="$here/requirements.txt"
mkdir -p "$(dirname "$venv")"

want="$(sha256sum "$req" | cut -d' ' -f1)"
stamp="$venv/.tend-requirements"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$venv"
    exit 0
fi

exec 9>"$venv.lock"
flock 9
# Another run may have finished while this one waited.
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$venv"
    exit 0
fi
python="${TEND_PYTHON:-python3}"
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "venv.sh: $python with the venv module is needed (Debian: apt-get install python3-venv; scripts/setup.sh does it)" >&2
    exit 1
fi
echo "venv.sh: installing the Python plugin toolchain into $venv" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req" >&2
echo "$want" >"$stamp"
echo "$venv"
