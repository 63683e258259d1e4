#!/usr/bin/env bash
# Creates VENV from Python 3.10 and installs the exact versions in requirements.lock plus this project.
# Python 3.10 comes from PATH, pyenv, or VENV-tools/python. Where none is found, uv (from PyPI, in a
# temporary environment) downloads its CPython 3.10 build into VENV-tools/python, kept for the venv
# and the next run; where that fails too (no internet), the error names the manual steps.
set -euo pipefail
venv=${1:-.venv}
venv=${venv%/}
case $venv in
  /*) uv_pythons=$venv-tools/python ;;
  *) uv_pythons=$PWD/$venv-tools/python ;;
esac

is_python310() {
  [ -x "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null
}

find_python() {
  local p
  if p=$(command -v python3.10) && is_python310 "$p"; then echo "$p"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    for p in "$(pyenv root)"/versions/3.10.*/bin/python3.10; do [ -x "$p" ] && { echo "$p"; return; }; done
  fi
  for p in "$uv_pythons"/cpython-3.10*/bin/python3.10; do is_python310 "$p" && { echo "$p"; return; }; done
  return 1
}

# step MESSAGE COMMAND...: prints MESSAGE, runs COMMAND with its output in a log, and on failure
# prints the log's last line (the cause, for pip and uv).
step() {
  echo "$1"; shift
  "$@" >"$tmp/log" 2>&1 || {
    echo "  failed: $(grep -o '[^[:space:]].*' "$tmp/log" | tail -n 1)" >&2
    return 1
  }
}

# uv into $tmp: a venv, or `pip install --target` where python3 has no venv module (Debian without
# python3-venv).
install_uv() {
  local pip_install=(-m pip install --quiet --disable-pip-version-check --retries 1 uv)
  if python3 -m venv "$tmp/venv"; then
    "$tmp/venv/bin/python" "${pip_install[@]}"
  else
    python3 "${pip_install[@]}" --target "$tmp/target"
  fi
}

fetch_python_with_uv() {
  local uv=$tmp/venv/bin/uv
  echo "Python 3.10 was not found on PATH, in pyenv or in $uv_pythons: fetching it with uv."
  step "Installing uv from PyPI into a temporary environment ($tmp)..." install_uv || return 1
  [ -x "$uv" ] || uv=$tmp/target/bin/uv
  step "Downloading CPython 3.10 with uv into $uv_pythons..." \
    env UV_PYTHON_INSTALL_DIR="$uv_pythons" UV_CACHE_DIR="$tmp/cache" "$uv" python install --no-bin 3.10
}

manual_steps() {
  echo "error: Python 3.10 is required (TFX 1.16 supports 3.9-3.10) and was not found." >&2
  echo "Install it, e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv'," >&2
  echo "or with uv where this set-up looks: 'UV_PYTHON_INSTALL_DIR=$uv_pythons uv python install 3.10'," >&2
  echo "then re-run (README.md, \"Without Python 3.10\")." >&2
  exit 1
}

if [ ! -x "$venv/bin/python" ]; then
  if ! py=$(find_python); then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    fetch_python_with_uv && py=$(find_python) || manual_steps
  fi
  echo "Creating $venv with $py"
  "$py" -m venv "$venv"
fi
echo "Installing locked dependencies (requirements.lock); a fresh install takes a few minutes..."
# pip freeze leaves out pip and setuptools: pin them here. The venv's old setuptools writes console
# scripts that resolve every dependency through pkg_resources and fail on normalised names.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check pip==24.2 setuptools==75.8.0
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "Environment ready: $venv"
