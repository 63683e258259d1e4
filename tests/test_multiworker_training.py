"""Multi-worker training: two worker processes on 127.0.0.1 train one model on CPU under
MultiWorkerMirroredStrategy (TF_CONFIG), each on its shard of the data; only the chief's export
and training report remain, and the model serves."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from components import features
from components import labels
from components import training_report
import trainer_inputs

WORKERS = 2
TIMEOUT = 300  # seconds, for both workers together
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_ports(count):
  """Ports free on 127.0.0.1 now (all sockets held open until every port is chosen)."""
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(('127.0.0.1', 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def _run_workers(fn_args_file, log_dir):
  """Starts every worker with its TF_CONFIG, waits for all; returns their exit codes and logs."""
  cluster = {'worker': [f'127.0.0.1:{port}' for port in _free_ports(WORKERS)]}
  env = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, 'tests')]),
    CUDA_VISIBLE_DEVICES='',
    TF_CPP_MIN_LOG_LEVEL='2',
    TF_USE_LEGACY_KERAS='1',
  )
  processes, logs = [], []
  try:
    for index in range(WORKERS):
      logs.append(os.path.join(log_dir, f'worker-{index}.log'))
      with open(logs[-1], 'w') as log:
        tf_config = {'cluster': cluster, 'task': {'type': 'worker', 'index': index}}
        processes.append(
          subprocess.Popen(
            [sys.executable, os.path.join(REPO, 'tests', 'multiworker_worker.py'), fn_args_file],
            env=dict(env, TF_CONFIG=json.dumps(tf_config)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
          )
        )
    deadline = time.monotonic() + TIMEOUT
    codes = [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in processes]
  finally:
    for p in processes:
      if p.poll() is None:
        os.killpg(p.pid, 9)
        p.wait()
  texts = []
  for path in logs:
    with open(path) as f:
      texts.append(f.read())
  return codes, texts


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """Both workers' run_fn on a tiny Transform output (12 train / 6 eval images, 32 px, 1 epoch,
  ResNet50V2 from scratch, 4 images per replica): fn_args, raw examples, exit codes, logs and
  the wall time of the workers."""
  root = tmp_path_factory.mktemp('multiworker')
  raw = trainer_inputs.raw_splits(train=12, eval_=6)
  custom_config = dict(trainer_inputs.TINY_CONFIG, epochs=1, batch_size=4)
  fn_args = trainer_inputs.transformed_fn_args(root, raw, custom_config)
  fn_args_file = str(root / 'fn_args.json')
  with open(fn_args_file, 'w') as f:
    json.dump(
      {
        key: getattr(fn_args, key)
        for key in (
          'train_files',
          'eval_files',
          'transform_graph_path',
          'serving_model_dir',
          'model_run_dir',
          'custom_config',
        )
      },
      f,
    )
  start = time.monotonic()
  codes, logs = _run_workers(fn_args_file, str(root))
  return fn_args, raw, codes, logs, time.monotonic() - start


def test_both_workers_train_one_model_under_multi_worker_mirrored_strategy(trained):
  _, _, codes, logs, seconds = trained
  assert codes == [0] * WORKERS, '\n'.join(log[-3000:] for log in logs)
  for index, log in enumerate(logs):
    chief = 'the chief' if index == 0 else 'not the chief'
    assert (
      f'MultiWorkerMirroredStrategy with 2 replica(s) on 2 workers, this one worker {index} '
      f'({chief}), global batch 8' in log
    )
    assert '12 training examples' in log and '2 steps per epoch' in log
  print(f'two workers: {seconds:.1f} s')


def test_only_the_chief_export_and_report_remain(trained):
  fn_args, _, _, logs, _ = trained
  assert sorted(os.listdir(fn_args.serving_model_dir)) == [
    'assets',
    'assets.extra',
    'fingerprint.pb',
    'saved_model.pb',
    'variables',
  ]
  assert not [name for name in os.listdir(fn_args.model_run_dir) if name.startswith('workertemp')]
  with open(os.path.join(fn_args.model_run_dir, training_report.HISTORY_FILE)) as f:
    assert json.load(f)['train_examples'] == 12
  assert f'Exported the model of epoch 1 to {fn_args.serving_model_dir}\n' in logs[0]
  temp = os.path.join(fn_args.serving_model_dir, 'workertemp_1')
  assert f'Exported the model of epoch 1 to {temp}\n' in logs[1]


def test_the_exported_model_serves(trained):
  fn_args, raw, _, _, _ = trained
  pngs = [
    tf.train.Example.FromString(e).features.feature[features.IMAGE_KEY].bytes_list.value[0]
    for e in raw['eval']
  ]
  outputs = tf.saved_model.load(fn_args.serving_model_dir).signatures['serving_default'](
    image_bytes=tf.constant(pngs)
  )
  probabilities = outputs['probabilities'].numpy()
  assert probabilities.shape == (6, labels.NUM_CLASSES)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(outputs['class_id'].numpy(), probabilities.argmax(axis=1))
