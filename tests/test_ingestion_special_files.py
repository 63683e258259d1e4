"""Entries that are not readable regular files: each is in the manifest, none blocks the run.

The ingestion runs in a child process with a timeout (a FIFO that is opened blocks forever) that
file permissions apply to: as root, the child loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
(dropped from its capability bounding set before exec), so a mode-000 file or folder is unreadable
to it as it is to any other user.
"""

import ctypes
import json
import os
import socket
import subprocess
import sys

import numpy as np
from PIL import Image
import pyarrow.parquet as pq

from components import labels

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
_INGEST = """
import json, sys
from components.ingestion import IngestOptions, ingest
out = sys.argv[2]
options = IngestOptions(max_bad_fraction=0.5)
result = ingest(sys.argv[1], out + '/examples', out + '/report', options)
print(json.dumps(result.summary))
"""


def _without_permission_override():
  """preexec_fn: the child's program cannot read files their mode forbids, even as root."""
  libc = ctypes.CDLL(None, use_errno=True)
  for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
    if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
      raise OSError(ctypes.get_errno(), 'prctl(PR_CAPBSET_DROP)')


def _ingest_without_privileges(root, out):
  """Runs the ingestion of `root` in a child that file modes apply to; returns its summary."""
  unprivileged = _without_permission_override if os.geteuid() == 0 else None
  child = subprocess.run(
    [sys.executable, '-c', _INGEST, str(root), str(out)],
    capture_output=True,
    text=True,
    timeout=180,
    preexec_fn=unprivileged,
  )
  assert child.returncode == 0, child.stderr[-3000:]
  return json.loads(child.stdout.splitlines()[-1])


def _png(path, seed):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.random.default_rng(seed).integers(0, 256, (30, 30), dtype=np.uint8)).save(path)


def test_special_entries_are_quarantined_or_ignored_and_never_block(tmp_path):
  data = tmp_path / 'data'
  for label, name in enumerate(labels.CLASS_NAMES):
    for i in range(4):
      _png(data / name / f'img{i}.png', label * 10 + i)
  covid, normal, viral = (data / name for name in labels.CLASS_NAMES)
  os.mkfifo(covid / 'pipe.png')
  os.mkfifo(covid / 'pipe')
  os.mkfifo(covid / '.pipe')
  unix_socket = socket.socket(socket.AF_UNIX)
  unix_socket.bind(str(normal / 'socket.png'))
  _png(normal / 'locked.png', 50)
  _png(normal / 'locked_folder' / 'inside.png', 51)
  (viral / 'gone.png').symlink_to(tmp_path / 'missing.png')
  _png(tmp_path / 'elsewhere' / 'linked.png', 52)
  (viral / 'more').symlink_to(tmp_path / 'elsewhere')
  (covid / 'loop').symlink_to('..')
  os.chmod(normal / 'locked.png', 0)
  os.chmod(normal / 'locked_folder', 0)
  try:
    summary = _ingest_without_privileges(data, tmp_path / 'out')
  finally:
    os.chmod(normal / 'locked_folder', 0o755)
    unix_socket.close()

  rows = pq.read_table(str(tmp_path / 'out' / 'report' / 'manifest.parquet')).to_pylist()
  manifest = {row['path']: row for row in rows}
  special = {
    path: (row['status'], row['reason']) for path, row in manifest.items() if 'img' not in path
  }
  assert special == {
    'COVID/pipe.png': ('quarantined', 'not_a_regular_file'),
    'COVID/pipe': ('ignored', 'not_an_image_file'),
    'COVID/.pipe': ('ignored', 'hidden_or_system_file'),
    'COVID/loop/': ('quarantined', 'symlink_loop'),
    'NORMAL/socket.png': ('quarantined', 'not_a_regular_file'),
    'NORMAL/locked.png': ('quarantined', 'unreadable'),
    'NORMAL/locked_folder/': ('quarantined', 'unreadable_folder'),
    'VIRAL PNEUMONIA/gone.png': ('quarantined', 'broken_symlink'),
    'VIRAL PNEUMONIA/more/linked.png': ('ingested', ''),
  }
  assert 'FIFO' in manifest['COVID/pipe.png']['detail']
  assert 'socket' in manifest['NORMAL/socket.png']['detail']
  assert 'Permission denied' in manifest['NORMAL/locked.png']['detail']
  assert summary['files_found'] == len(manifest) == 12 + len(special)
  assert summary['status'] == {'ingested': 13, 'quarantined': 6, 'duplicate': 0, 'ignored': 2}
  assert summary['reasons']['quarantined'] == {
    'broken_symlink': 1,
    'not_a_regular_file': 2,
    'symlink_loop': 1,
    'unreadable': 1,
    'unreadable_folder': 1,
  }
