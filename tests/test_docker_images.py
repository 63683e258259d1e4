"""The images of docker/ install what requirements.lock pins, on the lock's Python and Beam, and
the docs build, push and use them under one tag each (the Kubeflow spec's default image is checked
in test_kubeflow_compile.py)."""

import re
import shlex

import pytest

from docker_files import BEAM_WORKER_DOCKERFILE
from docker_files import docs_build_tags
from docker_files import instructions
from docker_files import normalize
from docker_files import pins
from docker_files import pip_installs
from docker_files import PIPELINE_DOCKERFILE
from docker_files import read

DOCKERFILES = (PIPELINE_DOCKERFILE, BEAM_WORKER_DOCKERFILE)
LOCK = pins(read('requirements.lock'))
# pip and setuptools are not in the lock (pip freeze leaves them out): bootstrap.sh pins them.
PINNED = {**pins(read('scripts/bootstrap.sh').replace(' ', '\n')), **LOCK}
PYTHON = re.search(r"python_requires='>=(\d+\.\d+),", read('setup.py')).group(1)
VERSION = re.search(r"version='([^']+)'", read('setup.py')).group(1)


def _instruction(dockerfile, keyword):
  return [rest for kw, rest in instructions(dockerfile) if kw == keyword]


@pytest.mark.parametrize('dockerfile', DOCKERFILES)
def test_the_image_installs_the_lock_then_the_project_without_dependencies(dockerfile):
  assert 'requirements.lock .' in _instruction(dockerfile, 'COPY')
  installs = pip_installs(dockerfile)
  assert ['-r', 'requirements.lock'] in installs
  assert ['--no-deps', '--no-build-isolation', '.'] in installs
  for args in installs:
    requirements = [
      a for a in args if not a.startswith('-') and a not in ('.', 'requirements.lock')
    ]
    for requirement in requirements:  # only exact pins, each the lock's (or bootstrap.sh's) version
      name, _, version = requirement.partition('==')
      assert version and version == PINNED.get(normalize(name)), requirement
    if '.' in args:
      assert '--no-deps' in args


@pytest.mark.parametrize('dockerfile', DOCKERFILES)
def test_the_image_runs_the_locks_python_with_legacy_keras(dockerfile):
  (base,) = _instruction(dockerfile, 'FROM')
  assert re.fullmatch(rf'python:{re.escape(PYTHON)}(\.\d+)?-slim-\w+', base), base
  env = dict(
    word.split('=', 1) for rest in _instruction(dockerfile, 'ENV') for word in shlex.split(rest)
  )
  assert env['TF_USE_LEGACY_KERAS'] == '1'
  assert _instruction(dockerfile, 'WORKDIR') == ['/pipeline']


def test_the_beam_worker_launches_the_locks_beam_version():
  beam = LOCK['apache-beam']
  sdk_image = f'apache/beam_python{PYTHON}_sdk:{beam}'
  assert f'--from={sdk_image} /opt/apache/beam /opt/apache/beam' in _instruction(
    BEAM_WORKER_DOCKERFILE, 'COPY'
  )
  assert _instruction(BEAM_WORKER_DOCKERFILE, 'ENTRYPOINT') == ['["/opt/apache/beam/boot"]']


def test_the_build_context_holds_what_the_images_install():
  patterns = [line for line in read('.dockerignore').splitlines() if line and line[0] != '#']
  assert patterns[0] == '*'  # .venv, .git, outputs and demo data stay out
  packages = re.search(r'include=\[([^]]*)\]', read('setup.py')).group(1)
  needed = {'requirements.lock', 'setup.py', 'schemas/'}
  needed |= {p + '/' for p in re.findall(r"'(\w+)'", packages)}
  assert needed <= {p[1:] for p in patterns if p.startswith('!')}


def test_the_docs_build_push_and_use_one_tag_per_image():
  tags = docs_build_tags()
  assert set(tags) == set(DOCKERFILES)
  for tag in tags.values():
    assert tag.endswith(f':{VERSION}'), tag  # the project's version
  docs = read('docs/scaling_out.md')
  tagged = re.findall(r'^docker tag (\S+) (\S+)$', docs, re.M)
  assert {local for local, _ in tagged} == set(tags.values())
  for local, remote in tagged:
    assert remote.endswith('/' + local), remote
  assert sorted(re.findall(r'^docker push (\S+)$', docs, re.M)) == sorted(r for _, r in tagged)
  uses = {
    PIPELINE_DOCKERFILE: r'--image[ =]([^\s`]+)',
    BEAM_WORKER_DOCKERFILE: r'--(?:environment_config|sdk_container_image)=([^\s`]+)',
  }
  for dockerfile, pattern in uses.items():
    used = set(re.findall(pattern, docs + read('README.md')))
    assert used, dockerfile
    for image in used:  # the image the docs build, under a registry's name
      assert image.endswith('/' + tags[dockerfile]), image
