#!/usr/bin/env bash
# Creates (or reuses) the Python venv that runs deploy/chdb/run.py: chdb, pinned by
# requirements.txt, under $TOLLGATE_SERVICES_DIR/chdb-venv (default .services/chdb-venv).
# Idempotent: a venv whose installed requirements match requirements.txt is left alone.
# Prints the venv's python on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${TOLLGATE_SERVICES_DIR:-$root/.services}/chdb-venv
req=$here/requirements.txt
stamp=$dir/.requirements.txt

if [[ -x $dir/bin/python ]] && cmp -s "$req" "$stamp"; then
  echo "$dir/bin/python"
  exit 0
fi
command -v python3 >/dev/null || { echo "chdb venv: python3 is not installed" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
python3 -m venv "$dir" >&2 || { echo "chdb venv: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
# --no-compile: Python compiles the few modules a check imports when it first runs; compiling
# all of chdb up front was half the install's CPU.
"$dir/bin/python" -m pip install --quiet --no-compile --disable-pip-version-check -r "$req" >&2 \
  || { echo "chdb venv: pip install -r $req failed" >&2; exit 1; }
cp "$req" "$stamp"
echo "$dir/bin/python"
