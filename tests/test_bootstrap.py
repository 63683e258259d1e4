"""scripts/bootstrap.sh: the Python 3.10 it picks, uv where there is none, the manual steps where
uv fails.

Runs the real script with a PATH of stub executables (shell scripts in a tmp folder) and the few
system tools it uses, so no interpreter of this machine is found and nothing is downloaded. Each
stub appends `<its path> <its arguments>` to the file STUB_LOG.
"""

import os
import pathlib
import shutil
import subprocess

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / 'scripts' / 'bootstrap.sh'
SYSTEM_TOOLS = ('cp', 'env', 'grep', 'mkdir', 'mktemp', 'rm', 'tail')
UV_PYTHON = 'cpython-3.10.16-linux-x86_64-gnu/bin/python3.10'
MANUAL_STEPS = 'error: Python 3.10 is required (TFX 1.16 supports 3.9-3.10) and was not found.'
INSTALL_LINE = (
  'Installing locked dependencies (requirements.lock); a fresh install takes a few minutes...'
)


class Machine:
  """A tmp folder with stub executables on PATH (`bin/`), stub templates and a call log."""

  def __init__(self, root):
    self.root = root
    self.bin = root / 'bin'
    self.log = root / 'calls.log'
    self.tmpdir = root / 'tmp'
    tools = root / 'tools'
    for folder in (self.bin, tools, self.tmpdir, root / 'templates'):
      folder.mkdir()
    for tool in SYSTEM_TOOLS:
      (tools / tool).symlink_to(shutil.which(tool))
    self.path = f'{self.bin}:{tools}'
    # A venv's python: pip installs succeed and do nothing.
    self.venv_python = self.template('venv_python', 'exit 0')

  def stub(self, path, body):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/bash\necho "$0 $*" >> "$STUB_LOG"\n{body}\n')
    path.chmod(0o755)
    return path

  def template(self, name, body):
    return self.stub(self.root / 'templates' / name, body)

  def python(self, path, version, venv_python=None, pip='exit 1'):
    """A python stub: `-c` (the version check) passes for 3.10 only; `-m venv DIR` copies
    venv_python to DIR/bin/python (fails without it, like Debian without python3-venv)."""
    venv = f'mkdir -p "$3/bin" && cp {venv_python} "$3/bin/python"' if venv_python else 'exit 1'
    return self.stub(
      path,
      f"""case "$1 $2" in
  "-c "*) exit {0 if version == '3.10' else 1} ;;
  "-m venv") {venv} ;;
  "-m pip") {pip} ;;
esac""",
    )

  def uv(self, installs=True):
    """A uv stub whose `python install` writes a python3.10 stub where uv puts its Pythons, or
    fails as uv does offline."""
    python310 = self.python(self.root / 'templates' / 'python3.10', '3.10', self.venv_python)
    if installs:
      body = f"""echo "UV_PYTHON_INSTALL_DIR=$UV_PYTHON_INSTALL_DIR" >> "$STUB_LOG"
echo "UV_CACHE_DIR=$UV_CACHE_DIR" >> "$STUB_LOG"
mkdir -p "$UV_PYTHON_INSTALL_DIR/{UV_PYTHON.rsplit('/', 1)[0]}"
cp {python310} "$UV_PYTHON_INSTALL_DIR/{UV_PYTHON}\""""
    else:
      body = """echo 'error: Failed to install cpython-3.10.22-linux-x86_64-gnu' >&2
echo '  cause: dns error' >&2
exit 1"""
    return self.template('uv', body)

  def run(self, venv):
    env = {
      'PATH': self.path,
      'HOME': str(self.root / 'home'),
      'TMPDIR': str(self.tmpdir),
      'STUB_LOG': str(self.log),
    }
    result = subprocess.run(
      [shutil.which('bash'), str(SCRIPT), str(venv)],
      cwd=self.root,
      env=env,
      capture_output=True,
      text=True,
      timeout=20,
    )
    calls = self.log.read_text().splitlines() if self.log.exists() else []
    self.log.unlink(missing_ok=True)
    return result, calls


@pytest.fixture
def machine(tmp_path):
  return Machine(tmp_path)


def _installs(venv):
  """The log lines of the three pip installs into the venv."""
  return [
    f'{venv}/bin/python -m pip install --quiet --disable-pip-version-check pip==24.2'
    ' setuptools==75.8.0',
    f'{venv}/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock',
    f'{venv}/bin/python -m pip install --quiet --disable-pip-version-check --no-deps'
    ' --no-build-isolation -e .',
  ]


def _pip_makes_uv(machine, folder):
  """A pip body that installs the uv stub into `folder`/uv (shell words)."""
  return f'mkdir -p {folder} && cp {machine.uv()} {folder}/uv'


def test_python310_on_path_is_picked_over_python312_as_before(machine):
  py310 = machine.python(machine.bin / 'python3.10', '3.10', machine.venv_python)
  machine.python(machine.bin / 'python3.12', '3.12', machine.venv_python)
  machine.python(machine.bin / 'python3', '3.12', machine.venv_python)
  venv = machine.root / '.venv'
  result, calls = machine.run(venv)
  assert result.returncode == 0, result.stderr
  # The console of today's set-up on a machine with Python 3.10, line for line.
  assert result.stdout.splitlines() == [
    f'Creating {venv} with {py310}',
    INSTALL_LINE,
    f'Environment ready: {venv}',
  ]
  assert result.stderr == ''
  assert calls == [
    f'{py310} -c import sys; assert sys.version_info[:2] == (3, 10)',
    f'{py310} -m venv {venv}',
    *_installs(venv),
  ]


def test_a_python310_that_is_not_310_is_skipped_for_pyenvs(machine):
  machine.python(machine.bin / 'python3.10', '3.12')  # e.g. a stale shim
  pyenv_root = machine.root / 'pyenv'
  pyenv_python = machine.python(
    pyenv_root / 'versions' / '3.10.13' / 'bin' / 'python3.10', '3.10', machine.venv_python
  )
  machine.stub(machine.bin / 'pyenv', f'echo {pyenv_root}')
  result, calls = machine.run('venv')
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines()[0] == f'Creating venv with {pyenv_python}'
  assert f'{pyenv_python} -m venv venv' in calls


def test_without_python310_uv_fetches_it_and_the_next_run_reuses_it(machine):
  temp_venv_python = machine.template('temp_venv_python', _pip_makes_uv(machine, '"${0%/*}"'))
  machine.python(machine.bin / 'python3.12', '3.12', machine.venv_python)
  machine.python(machine.bin / 'python3', '3.12', temp_venv_python)
  uv_pythons = machine.root / '.venv-tools' / 'python'
  result, calls = machine.run('.venv')
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0] == (
    f'Python 3.10 was not found on PATH, in pyenv or in {uv_pythons}: fetching it with uv.'
  )
  assert lines[1].startswith(
    f'Installing uv from PyPI into a temporary environment ({machine.tmpdir}/'
  )
  assert lines[2:] == [
    f'Downloading CPython 3.10 with uv into {uv_pythons}...',
    f'Creating .venv with {uv_pythons / UV_PYTHON}',
    INSTALL_LINE,
    'Environment ready: .venv',
  ]
  temp = lines[1].split('(')[1].split(')')[0]
  assert f'{machine.bin}/python3 -m venv {temp}/venv' in calls
  assert (
    f'{temp}/venv/bin/python -m pip install --quiet --disable-pip-version-check --retries 1 uv'
    in calls
  )
  assert f'{temp}/venv/bin/uv python install --no-bin 3.10' in calls
  assert f'UV_PYTHON_INSTALL_DIR={uv_pythons}' in calls
  assert f'UV_CACHE_DIR={temp}/cache' in calls
  assert f'{uv_pythons / UV_PYTHON} -m venv .venv' in calls
  assert calls[-3:] == _installs('.venv')
  assert list(machine.tmpdir.iterdir()) == []  # uv's temporary environment is gone

  # .venv removed: the next set-up finds uv's Python and needs neither python3 nor uv.
  shutil.rmtree(machine.root / '.venv')
  (machine.bin / 'python3').unlink()
  result, calls = machine.run('.venv')
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines()[0] == f'Creating .venv with {uv_pythons / UV_PYTHON}'
  assert not any(call.split()[0].endswith('/uv') for call in calls)


def test_uv_by_pip_target_where_python3_has_no_venv(machine):
  machine.python(machine.bin / 'python3', '3.12', pip=_pip_makes_uv(machine, '"${@: -1}/bin"'))
  result, calls = machine.run('.venv')
  assert result.returncode == 0, result.stderr
  uv_python = machine.root / '.venv-tools' / 'python' / UV_PYTHON
  assert f'Creating .venv with {uv_python}' in result.stdout.splitlines()
  target = [call for call in calls if '--target' in call]
  assert len(target) == 1 and target[0].startswith(f'{machine.bin}/python3 -m pip install')


def _no_python3(machine):
  pass


def _no_network_for_pip(machine):
  pip = "echo 'ERROR: No matching distribution found for uv' >&2; exit 1"
  temp_venv_python = machine.template('temp_venv_python', pip)
  machine.python(machine.bin / 'python3', '3.12', temp_venv_python)


def _no_venv_and_no_pip(machine):
  machine.python(machine.bin / 'python3', '3.12', pip="echo 'No module named pip' >&2; exit 1")


def _no_network_for_uv(machine):
  uv = machine.uv(installs=False)
  temp_venv_python = machine.template('temp_venv_python', f'cp {uv} "${{0%/*}}/uv"')
  machine.python(machine.bin / 'python3', '3.12', temp_venv_python)


@pytest.mark.parametrize(
  'setup, cause, steps',
  [
    (_no_python3, 'python3: command not found', 1),
    (_no_network_for_pip, 'ERROR: No matching distribution found for uv', 1),
    (_no_venv_and_no_pip, 'No module named pip', 1),
    (_no_network_for_uv, 'cause: dns error', 2),
  ],
)
def test_when_uv_fails_the_manual_steps_and_exit_1(machine, setup, cause, steps):
  machine.python(machine.bin / 'python3.12', '3.12', machine.venv_python)
  setup(machine)
  result, calls = machine.run('.venv')
  assert result.returncode == 1
  lines = result.stdout.splitlines()
  assert lines[0].endswith('fetching it with uv.')
  assert len(lines) == 1 + steps  # the first line, then one line per step
  failed, *manual_steps = result.stderr.splitlines()
  assert failed.startswith('  failed: ') and failed.endswith(cause)
  assert manual_steps == [
    MANUAL_STEPS,
    "Install it, e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv',",
    'or with uv where this set-up looks:'
    f" 'UV_PYTHON_INSTALL_DIR={machine.root}/.venv-tools/python uv python install 3.10',",
    'then re-run (README.md, "Without Python 3.10").',
  ]
  assert not (machine.root / '.venv').exists()
  assert list(machine.tmpdir.iterdir()) == []


def test_an_existing_venv_is_kept_without_looking_for_python(machine):
  machine.stub(machine.root / '.venv' / 'bin' / 'python', 'exit 0')
  result, calls = machine.run('.venv')
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines() == [INSTALL_LINE, 'Environment ready: .venv']
  assert calls == _installs('.venv')


def test_the_stub_path_holds_no_python_of_this_machine(machine):
  for folder in machine.path.split(os.pathsep):
    assert not [p for p in pathlib.Path(folder).iterdir() if p.name.startswith('python')]
