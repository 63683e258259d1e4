#!/usr/bin/env bash
# Creates VENV from Python 3.10 and installs the exact versions in requirements.lock plus this project.
set -euo pipefail
venv=${1:-.venv}
find_python() {
  if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
    command -v python3.10; return
  fi
  if command -v pyenv >/dev/null 2>&1; then
    for p in "$(pyenv root)"/versions/3.10.*/bin/python3.10; do [ -x "$p" ] && { echo "$p"; return; }; done
  fi
  return 1
}
if [ ! -x "$venv/bin/python" ]; then
  py=$(find_python) || {
    echo "error: Python 3.10 is required (TFX 1.16 supports 3.9-3.10) and was not found." >&2
    echo "Install it, e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv', then re-run." >&2
    exit 1
  }
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
