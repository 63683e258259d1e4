"""What the Dockerfiles in docker/ install and which image tags docs/scaling_out.md builds, read
from the files themselves (no docker here): used to check them against requirements.lock and the
Kubeflow spec."""

import os
import re
import shlex
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIPELINE_DOCKERFILE = 'docker/pipeline.Dockerfile'
BEAM_WORKER_DOCKERFILE = 'docker/beam_worker.Dockerfile'


def read(path: str) -> str:
  with open(os.path.join(ROOT, path), encoding='utf-8') as f:
    return f.read()


def normalize(name: str) -> str:
  """A distribution name as pip compares them (PEP 503): `tf_keras` == `tf-keras`."""
  return re.sub(r'[-_.]+', '-', name).lower()


def pins(text: str) -> Dict[str, str]:
  """`name==version` pins of a requirements file or a shell script, by normalised name."""
  return {
    normalize(name): version
    for name, version in re.findall(r'^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)', text, re.M)
  }


def instructions(dockerfile: str) -> List[Tuple[str, str]]:
  """(KEYWORD, arguments) of each instruction, continuation lines joined, comments dropped."""
  lines = [line for line in read(dockerfile).splitlines() if not line.lstrip().startswith('#')]
  joined = re.sub(r'\\\n\s*', ' ', '\n'.join(lines))
  return [
    (keyword.upper(), rest.strip())
    for keyword, rest in (line.split(None, 1) for line in joined.splitlines() if line.strip())
  ]


def pip_installs(dockerfile: str) -> List[List[str]]:
  """The arguments after `pip install` of every pip command the RUN instructions run."""
  commands = []
  for keyword, rest in instructions(dockerfile):
    if keyword == 'RUN':
      for command in re.split(r'&&|;', rest):
        words = shlex.split(command)
        start = next((i for i in range(len(words)) if words[i : i + 2] == ['pip', 'install']), None)
        if start is not None:
          commands.append(words[start + 2 :])
  return commands


def docs_build_tags() -> Dict[str, str]:
  """{Dockerfile: tag} of the `docker build -f FILE -t TAG .` commands in docs/scaling_out.md."""
  return dict(re.findall(r'^docker build -f (\S+) -t (\S+) \.$', read('docs/scaling_out.md'), re.M))
