"""`cxr predict`: same classes as the serving signature, failures isolated, model resolution,
hostile files and damaged models."""
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import pytest
import tensorflow as tf

import fake_cxr_model
from components import labels
from components.pusher import versioned_dir
from pipeline import predict

TABLE = [[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.3, 0.36, 0.34]]


@pytest.fixture(scope='module')
def output_dir(tmp_path_factory):
  """A `cxr run`-like output folder whose serving/ holds two versions (the latest is TABLE)."""
  root = tmp_path_factory.mktemp('predict')
  serving = str(root / 'output' / 'serving')
  versioned_dir.publish(fake_cxr_model.save_model(str(root / 'old'), [[1.0, 0.0, 0.0]]), serving)
  versioned_dir.publish(fake_cxr_model.save_model(str(root / 'new'), TABLE), serving)
  return str(root / 'output')


@pytest.fixture
def images(tmp_path):
  """Good PNGs for table rows 3, 0, 2, 1 (one in a subfolder), a corrupt PNG, a text file."""
  folder = tmp_path / 'images'
  (folder / 'sub').mkdir(parents=True)
  for name, row in (('a.png', 3), ('b.PNG', 0), ('sub/c.png', 2), ('d.png', 1)):
    (folder / name).write_bytes(fake_cxr_model.png_for_row(row))
  (folder / 'broken.png').write_bytes(fake_cxr_model.png_for_row(1)[:-20])  # a valid header
  (folder / 'notes.txt').write_text('not an image')
  return folder


def _signature_classes(model_dir, paths):
  serve = tf.saved_model.load(model_dir).signatures['serving_default']
  outputs = serve(image_bytes=tf.constant([open(p, 'rb').read() for p in paths]))
  return [labels.CLASS_NAMES[i] for i in outputs['class_id'].numpy()], outputs['probabilities']


def test_resolves_the_latest_version_from_an_output_or_serving_folder(output_dir, tmp_path):
  serving = os.path.join(output_dir, 'serving')
  latest = versioned_dir.latest_version_dir(serving)
  assert predict.load_model(output_dir)[0] == latest
  assert predict.load_model(serving)[0] == latest
  oldest = os.path.join(serving, str(versioned_dir.versions(serving)[0]))
  assert predict.load_model(oldest)[0] == oldest
  with pytest.raises(ValueError, match='No model in'):
    predict.load_model(str(tmp_path))


def test_json_lines_match_the_serving_signature_and_isolate_failures(output_dir, images):
  out = io.StringIO()
  missing = str(images / 'missing.png')
  status = predict.run(output_dir, [str(images), missing], as_json=True, out=out)
  assert status == 1
  lines = [json.loads(line) for line in out.getvalue().splitlines()]
  by_name = {os.path.relpath(line['path'], images): line for line in lines}
  assert sorted(by_name) == ['a.png', 'b.PNG', 'broken.png', 'd.png', 'missing.png', 'sub/c.png']
  assert by_name['broken.png']['error'] == 'cannot decode image: Invalid PNG data, size 53'
  assert 'cannot read file' in by_name['missing.png']['error']
  good = [line for line in lines if 'error' not in line]
  classes, probabilities = _signature_classes(predict.load_model(output_dir)[0],
                                              [line['path'] for line in good])
  assert [line['class_name'] for line in good] == classes
  assert set(classes) == set(labels.CLASS_NAMES)
  np.testing.assert_allclose([list(line['probabilities'].values()) for line in good],
                             probabilities.numpy(), rtol=1e-6)
  assert all(line['class_id'] == labels.CLASS_NAMES.index(line['class_name']) for line in good)


def test_a_corrupt_image_inside_a_batch_does_not_fail_its_neighbours(output_dir, images):
  paths = [str(images / 'a.png'), str(images / 'broken.png'), str(images / 'b.PNG')]
  serve = predict.load_model(output_dir)[1]
  predictions = list(predict.classify(serve, paths, batch_size=3))
  assert [p.path for p in predictions] == paths
  assert [p.class_name for p in predictions] == ['NORMAL', None, 'COVID']
  assert predictions[1].error.startswith('cannot decode image')


def test_text_output_prints_classes_to_stdout_and_errors_to_stderr(output_dir, images):
  out, err = io.StringIO(), io.StringIO()
  assert predict.run(output_dir, [str(images / 'b.PNG'), str(images / 'broken.png'),
                                  str(images / 'sub')], out=out, err=err) == 1
  assert out.getvalue().splitlines() == [
      f'{images / "b.PNG"}: COVID (COVID 0.800, NORMAL 0.100, VIRAL PNEUMONIA 0.100)',
      f'{images / "sub" / "c.png"}: VIRAL PNEUMONIA (COVID 0.200, NORMAL 0.200, '
      'VIRAL PNEUMONIA 0.600)']
  assert err.getvalue().startswith(f'{images / "broken.png"}: error: cannot decode image')
  (images / 'empty').mkdir()
  with pytest.raises(ValueError, match='No image files'):
    predict.run(output_dir, [str(images / 'empty')], out=out, err=err)


def test_cxr_predict_command(output_dir, images, capsys):
  from pipeline import cli  # pylint: disable=g-import-not-at-top
  assert cli.main(['predict', '--model', output_dir, '--json', str(images / 'd.png')]) == 0
  assert json.loads(capsys.readouterr().out)['class_name'] == 'NORMAL'
  assert cli.main(['predict', '--model', str(images), str(images / 'd.png')]) == 2
  assert 'cxr predict: error: No model in' in capsys.readouterr().err
