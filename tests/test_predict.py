"""`cxr predict`: same classes as the serving signature, failures isolated, model resolution,
hostile files and damaged models."""

import io
import json
import os
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import zlib

import matplotlib
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
from tensorflow_transform.saved import saved_transform_io_v2

from components import gradcam_views
from components import labels
from components import operating_point
from components.ingestion import image_check
from components.pusher import versioned_dir
import dicom_files
import fake_cxr_model
from pipeline import predict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = [[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.3, 0.36, 0.34]]
# The newest model's operating point: rows 0 and 3 are COVID positive (row 3's class is NORMAL).
POINT = operating_point.OperatingPoint('COVID', 0.25, 0.95, 19, 1, 35, 5)
# The newest model's abstention threshold on its ood_score (the row index): row 3 is outside.
OOD_THRESHOLD = 2.5


@pytest.fixture(scope='module')
def output_dir(tmp_path_factory):
  """A `cxr run`-like output folder whose serving/ holds two versions: the latest is TABLE with
  POINT, OOD_THRESHOLD and an `explain` signature, the oldest predates operating points,
  abstention and Grad-CAM."""
  root = tmp_path_factory.mktemp('predict')
  serving = str(root / 'output' / 'serving')
  versioned_dir.publish(fake_cxr_model.save_model(str(root / 'old'), [[1.0, 0.0, 0.0]]), serving)
  versioned_dir.publish(
    fake_cxr_model.save_model(
      str(root / 'new'), TABLE, POINT, explain=True, ood_threshold=OOD_THRESHOLD
    ),
    serving,
  )
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


def _signature_outputs(model_dir, paths):
  serve = tf.saved_model.load(model_dir).signatures['serving_default']
  return serve(image_bytes=tf.constant([open(p, 'rb').read() for p in paths]))


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
  outputs = _signature_outputs(predict.load_model(output_dir)[0], [line['path'] for line in good])
  classes = [labels.CLASS_NAMES[i] for i in outputs['class_id'].numpy()]
  assert [line['class_name'] for line in good] == classes
  assert set(classes) == set(labels.CLASS_NAMES)
  probabilities = outputs['probabilities'].numpy()
  np.testing.assert_allclose(
    [list(line['probabilities'].values()) for line in good], probabilities, rtol=1e-6
  )
  assert all(line['class_id'] == labels.CLASS_NAMES.index(line['class_name']) for line in good)
  # covid_positive is the signature's: P(COVID) above the model's stored threshold.
  covid_positive = [line['covid_positive'] for line in good]
  assert covid_positive == outputs['covid_positive'].numpy().tolist()
  assert covid_positive == (probabilities[:, 0].astype(float) > POINT.threshold).tolist()
  assert {os.path.basename(line['path']): line['covid_positive'] for line in good} == {
    'a.png': True,
    'b.PNG': True,
    'c.png': False,
    'd.png': False,
  }
  # in_distribution and the scores are the signature's: the image outside keeps its class.
  assert [line['in_distribution'] for line in good] == outputs['in_distribution'].numpy().tolist()
  for score in ('ood_score', 'appearance_score'):
    np.testing.assert_allclose([line[score] for line in good], outputs[score].numpy())
  assert {os.path.basename(line['path']): line['in_distribution'] for line in good} == {
    'a.png': False,
    'b.PNG': True,
    'c.png': True,
    'd.png': True,
  }
  assert by_name['a.png']['class_name'] == 'NORMAL' and by_name['a.png']['ood_score'] == 3.0
  assert by_name['a.png']['appearance_score'] == 6.0
  # A model stored before operating points and abstention has neither.
  out = io.StringIO()
  serving = os.path.join(output_dir, 'serving')
  oldest = os.path.join(serving, str(versioned_dir.versions(serving)[0]))
  assert predict.run(oldest, [str(images / 'a.png')], as_json=True, out=out) == 0
  assert not {'covid_positive', 'in_distribution', 'ood_score', 'appearance_score'} & set(
    json.loads(out.getvalue())
  )


def test_a_corrupt_image_inside_a_batch_does_not_fail_its_neighbours(output_dir, images):
  paths = [str(images / 'a.png'), str(images / 'broken.png'), str(images / 'b.PNG')]
  serve = predict.load_model(output_dir)[1]
  predictions = list(predict.classify(serve, paths, batch_size=3))
  assert [p.path for p in predictions] == paths
  assert [p.class_name for p in predictions] == ['NORMAL', None, 'COVID']
  assert predictions[1].error.startswith('cannot decode image')


def test_text_output_prints_classes_to_stdout_and_errors_to_stderr(output_dir, images):
  out, err = io.StringIO(), io.StringIO()
  assert (
    predict.run(
      output_dir,
      [str(images / 'b.PNG'), str(images / 'broken.png'), str(images / 'sub')],
      out=out,
      err=err,
    )
    == 1
  )
  assert out.getvalue().splitlines() == [
    f'{images / "b.PNG"}: COVID (COVID 0.800, NORMAL 0.100, VIRAL PNEUMONIA 0.100), '
    'covid_positive: yes',
    f'{images / "sub" / "c.png"}: VIRAL PNEUMONIA (COVID 0.200, NORMAL 0.200, '
    'VIRAL PNEUMONIA 0.600), covid_positive: no',
  ]
  assert err.getvalue().startswith(f'{images / "broken.png"}: error: cannot decode image')
  out = io.StringIO()
  assert predict.run(output_dir, [str(images / 'a.png')], out=out) == 0
  assert out.getvalue() == (
    f'{images / "a.png"}: outside the training distribution: not classified (ood_score 3, '
    'appearance_score 6)\n'
  )
  (images / 'empty').mkdir()
  with pytest.raises(ValueError, match='No image files'):
    predict.run(output_dir, [str(images / 'empty')], out=out, err=err)


def test_cxr_predict_command(output_dir, images, capsys):
  from pipeline import cli

  assert cli.main(['predict', '--model', output_dir, '--json', str(images / 'd.png')]) == 0
  assert json.loads(capsys.readouterr().out)['class_name'] == 'NORMAL'
  assert cli.main(['predict', '--model', str(images), str(images / 'd.png')]) == 2
  assert 'cxr predict: error: No model in' in capsys.readouterr().err


def test_cxr_predict_json_prints_a_line_per_image_and_nothing_else(output_dir, images):
  """A fresh process: no TensorFlow start-up line, FutureWarning or INFO record on either stream."""
  paths = [str(images / name) for name in ('b.PNG', 'd.png', 'sub/c.png')]
  result = subprocess.run(
    [sys.executable, '-m', 'pipeline.cli', 'predict', '--model', output_dir, '--json', *paths],
    env=dict(os.environ, PYTHONPATH=REPO),
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert result.returncode == 0, result.stderr
  assert [json.loads(line)['class_name'] for line in result.stdout.splitlines()] == [
    'COVID',
    'NORMAL',
    'VIRAL PNEUMONIA',
  ]
  assert result.stderr == ''


def test_dicom_is_classified_as_ingestion_stores_it_and_a_ct_is_refused(
  output_dir, tmp_path, capsys
):
  from pipeline import cli

  folder = tmp_path / 'dicom'
  folder.mkdir()
  chest = dicom_files.to_bytes(dicom_files.chest(dicom_files.read('MR_small_jpeg_ls_lossless.dcm')))
  (folder / 'chest.dcm').write_bytes(chest)
  (folder / 'chest_no_extension').write_bytes(chest)
  ct = dicom_files.chest(dicom_files.read('CT_small.dcm'), modality='CT')
  (folder / 'ct.dcm').write_bytes(dicom_files.to_bytes(ct))
  stored = image_check.stored_bytes(chest, image_check.inspect(chest, 10**8), 10**8)
  assert predict.read_image(str(folder / 'chest.dcm')) == stored  # one conversion

  paths = [str(folder), str(folder / 'chest_no_extension')]
  assert cli.main(['predict', '--model', output_dir, '--json', *paths]) == 1
  lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [os.path.basename(line['path']) for line in lines] == [
    'chest.dcm',
    'ct.dcm',
    'chest_no_extension',
  ]
  outputs = predict.load_model(output_dir)[1](image_bytes=tf.constant([stored]))
  for line in (lines[0], lines[2]):
    assert line['class_id'] == outputs['class_id'].numpy()[0]
    np.testing.assert_allclose(
      list(line['probabilities'].values()), outputs['probabilities'].numpy()[0], rtol=1e-6
    )
  refusal = 'outside intended use: Modality is CT: only chest radiographs (CR or DX) are classified'
  assert lines[1] == {'path': str(folder / 'ct.dcm'), 'error': refusal}
  assert cli.main(['predict', '--model', output_dir, str(folder / 'ct.dcm')]) == 1
  assert capsys.readouterr().err.splitlines() == [f'{folder / "ct.dcm"}: error: {refusal}']


def _assert_overlay_of_row(path: str, row: int) -> None:
  """The overlay of the fake `explain`'s heatmap for table row `row` (hot in quadrant row % 4)
  over that row's uniform gray image: the image enlarged to 224 px (8 px x 28), the hot quadrant
  half the colormap's hottest colour, the others the image's gray."""
  overlay = np.asarray(Image.open(path))
  assert overlay.shape == (224, 224, 3)
  gray = row * fake_cxr_model.GRAY_STEP
  hottest = np.array(matplotlib.colormaps[gradcam_views.OVERLAY_COLORMAP](1.0)[:3])
  for quadrant in range(4):
    centre = overlay[56 + 112 * (quadrant // 2), 56 + 112 * (quadrant % 2)]
    expected = np.round(255 * (0.5 * gray / 255 + 0.5 * hottest)) if quadrant == row % 4 else gray
    np.testing.assert_array_equal(centre, np.broadcast_to(expected, (3,)))


def test_explain_writes_an_overlay_per_classified_image(output_dir, images, tmp_path):
  (images / 'sub' / 'a.png').write_bytes(fake_cxr_model.png_for_row(1))  # a second `a.png`
  overlays = tmp_path / 'overlays'
  out = io.StringIO()
  status = predict.run(output_dir, [str(images)], as_json=True, out=out, explain_dir=str(overlays))
  assert status == 1  # broken.png
  lines = [json.loads(line) for line in out.getvalue().splitlines()]
  assert {os.path.relpath(line['path'], images): line.get('overlay') for line in lines} == {
    'a.png': str(overlays / 'a_gradcam.png'),
    'b.PNG': str(overlays / 'b_gradcam.png'),
    'broken.png': None,
    'd.png': str(overlays / 'd_gradcam.png'),
    'sub/a.png': str(overlays / 'a_gradcam_2.png'),
    'sub/c.png': str(overlays / 'c_gradcam.png'),
  }
  assert sorted(os.listdir(overlays)) == [
    'a_gradcam.png',
    'a_gradcam_2.png',
    'b_gradcam.png',
    'c_gradcam.png',
    'd_gradcam.png',
  ]
  rows = {'a_gradcam': 3, 'a_gradcam_2': 1, 'b_gradcam': 0, 'c_gradcam': 2, 'd_gradcam': 1}
  for name, row in rows.items():
    _assert_overlay_of_row(str(overlays / f'{name}.png'), row)


def test_cxr_predict_explain_says_where_and_needs_an_explain_signature(
  output_dir, images, tmp_path, capsys
):
  from pipeline import cli

  overlays = tmp_path / 'overlays'
  assert (
    cli.main(['predict', '--model', output_dir, '--explain', str(overlays), str(images / 'd.png')])
    == 0
  )
  assert capsys.readouterr().out.endswith(f', overlay: {overlays / "d_gradcam.png"}\n')
  _assert_overlay_of_row(str(overlays / 'd_gradcam.png'), 1)
  serving = os.path.join(output_dir, 'serving')
  oldest = os.path.join(serving, str(versioned_dir.versions(serving)[0]))
  assert (
    cli.main(['predict', '--model', oldest, '--explain', str(overlays), str(images / 'a.png')]) == 2
  )
  assert capsys.readouterr().err.splitlines()[-1] == (
    f'cxr predict: error: {oldest} has no `explain` signature returning heatmaps (a model exported '
    'before Grad-CAM): classify without --explain, or train a new model with `cxr run`'
  )
  not_a_folder = images / 'a.png'
  assert (
    cli.main(
      ['predict', '--model', output_dir, '--explain', str(not_a_folder), str(images / 'd.png')]
    )
    == 2
  )
  assert capsys.readouterr().err.splitlines()[-1] == (
    f'cxr predict: error: Cannot create the --explain folder {not_a_folder} (File exists): give '
    'a writable folder'
  )


def _png_bomb(colour_type: int, side: int = 23000) -> bytes:
  """A side x side 1-bit PNG of zeros (colour type 0: gray, 3: palette) of about 64 KB, which a
  decoder expands to side * side pixels (1.6 GB as the RGB a palette becomes)."""

  def chunk(kind, body):
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))

  row = bytes(1 + (side + 7) // 8)  # filter type 0, then the packed 1-bit samples
  compressor = zlib.compressobj(9)
  pixels = b''.join(compressor.compress(row) for _ in range(side)) + compressor.flush()
  header = struct.pack('>IIBBBBB', side, side, 1, colour_type, 0, 0, 0)
  palette = chunk(b'PLTE', b'\0\0\0\xff\xff\xff') if colour_type == 3 else b''
  return (
    b'\x89PNG\r\n\x1a\n'
    + chunk(b'IHDR', header)
    + palette
    + chunk(b'IDAT', pixels)
    + chunk(b'IEND', b'')
  )


def _write_bombs(folder) -> list:
  names = []
  for name, colour_type in (('bomb-gray.png', 0), ('bomb-palette.png', 3)):
    (folder / name).write_bytes(_png_bomb(colour_type))
    names.append(name)
  return names


BOMB_ERROR = (
  'too many pixels: Image size (529000000 pixels) exceeds limit of 178956970 pixels, '
  'could be decompression bomb DOS attack.'
)


def test_images_with_too_many_pixels_are_refused_before_decoding(output_dir, images):
  bombs = _write_bombs(images)
  assert all(os.path.getsize(images / name) < 100_000 for name in bombs)
  out = io.StringIO()
  paths = [str(images / name) for name in ('a.png', *bombs, 'b.PNG')]
  assert predict.run(output_dir, paths, as_json=True, out=out) == 1
  lines = [json.loads(line) for line in out.getvalue().splitlines()]
  assert [line['path'] for line in lines] == paths
  assert [line.get('class_name') for line in lines] == ['NORMAL', None, None, 'COVID']
  assert [line.get('error') for line in lines[1:3]] == [BOMB_ERROR, BOMB_ERROR]


def test_ingestions_size_and_pixel_limits_apply_per_file(images):
  path = str(images / 'a.png')  # 4x4
  with pytest.raises(
    predict.FileRefused, match='too many pixels: 4x4 = 16 pixels > max_image_pixels=15'
  ):
    predict.read_image(path, max_pixels=15)
  assert predict.read_image(path, max_pixels=16) == (images / 'a.png').read_bytes()
  (images / 'big.png').write_bytes((images / 'a.png').read_bytes().ljust((1 << 20) + 9, b'\0'))
  with pytest.raises(
    predict.FileRefused,
    match='file too large: 1,048,585 bytes is more than any image of max_image_pixels=1 can take',
  ):
    predict.read_image(str(images / 'big.png'), max_pixels=1)


def test_a_fifo_gets_an_error_line_and_never_blocks(output_dir, images):
  os.mkfifo(images / 'pipe.png')

  def blocked(*_):
    raise TimeoutError('cxr predict blocked on a FIFO')

  previous = signal.signal(signal.SIGALRM, blocked)
  signal.alarm(60)
  try:
    out, err = io.StringIO(), io.StringIO()
    status = predict.run(
      output_dir, [str(images / 'pipe.png'), str(images / 'b.PNG')], out=out, err=err
    )
  finally:
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
  assert status == 1
  assert err.getvalue() == (
    f'{images / "pipe.png"}: error: cannot read file: a FIFO, not a regular file\n'
  )
  assert out.getvalue().startswith(f'{images / "b.PNG"}: COVID')


# Run by a fresh interpreter (single-threaded): runs argv[1:] without root's file access (root
# reads any folder whatever its mode: the two capabilities that let it are dropped for the child),
# then prints the child's peak resident memory (KB) as the last line of stderr.
_RUN_MEASURED = textwrap.dedent("""
    import ctypes, os, resource, subprocess, sys
    if os.geteuid() == 0:
      libc = ctypes.CDLL(None, use_errno=True)
      for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
          sys.exit(f'prctl(PR_CAPBSET_DROP): {os.strerror(ctypes.get_errno())}')
    status = subprocess.call(sys.argv[1:])
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
    sys.exit(status)
""")


def test_cxr_predict_on_bombs_a_fifo_and_an_unreadable_folder(tmp_path):
  """The issue's scenario, run as `cxr predict` without root's file access: a result line for
  every good image, an error line for each bad file and folder, exit status 1, bounded memory and
  time."""
  model = fake_cxr_model.save_model(str(tmp_path / 'model'), TABLE)
  folder = tmp_path / 'images'
  (folder / 'sub').mkdir(parents=True)
  (folder / 'locked').mkdir()
  for name, row in (('a.png', 3), ('b.png', 0), ('sub/c.png', 2), ('locked/d.png', 1)):
    (folder / name).write_bytes(fake_cxr_model.png_for_row(row))
  _write_bombs(folder)
  os.mkfifo(folder / 'pipe.png')
  (folder / 'locked').chmod(0)
  proc = subprocess.Popen(
    [
      sys.executable,
      '-c',
      _RUN_MEASURED,
      sys.executable,
      '-m',
      'pipeline.cli',
      'predict',
      '--model',
      model,
      '--json',
      str(folder),
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    env=dict(os.environ, PYTHONPATH=REPO),
    cwd=REPO,
    text=True,
    start_new_session=True,
  )
  try:
    out, err = proc.communicate(timeout=300)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    raise
  finally:
    (folder / 'locked').chmod(0o755)
  assert proc.returncode == 1, err
  by_name = {
    os.path.relpath(line['path'], folder): line for line in map(json.loads, out.splitlines())
  }
  assert {name: line.get('class_name') or line['error'] for name, line in by_name.items()} == {
    'a.png': 'NORMAL',
    'b.png': 'COVID',
    'sub/c.png': 'VIRAL PNEUMONIA',
    'bomb-gray.png': BOMB_ERROR,
    'bomb-palette.png': BOMB_ERROR,
    'pipe.png': 'cannot read file: a FIFO, not a regular file',
    'locked': 'cannot list folder: Permission denied',
  }
  peak_rss_kb = int(err.splitlines()[-1])
  print(f'cxr predict peak RSS: {peak_rss_kb / 1024:.0f} MB')
  assert peak_rss_kb < 2 * 1024 * 1024


def _transform_graph(export_dir: str) -> None:
  """A SavedModel shaped like the Transform output (tft's writer, serving_default on `image`)."""

  @tf.function(input_signature=[{'image': tf.TensorSpec([None, 1], tf.string)}])
  def transform_fn(inputs):
    return {'pixels_xf': inputs['image']}

  saved_transform_io_v2.write_v2_saved_model(tf.Module(), transform_fn, 'transform_fn', export_dir)


def _truncate(path: str) -> None:
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


_DAMAGED = {  # a --model folder: (damage done to a copy of a good model version, its error)
  'garbage saved_model.pb': (
    lambda d: pathlib.Path(d, 'saved_model.pb').write_bytes(b'not a SavedModel' * 64),
    'Cannot load the SavedModel in {} (Cannot parse file',
  ),
  'half-copied saved_model.pb': (
    lambda d: _truncate(os.path.join(d, 'saved_model.pb')),
    'Cannot load the SavedModel in {} (Cannot parse file',
  ),
  'half-copied variables': (
    lambda d: _truncate(os.path.join(d, 'variables', 'variables.data-00000-of-00001')),
    (
      'Cannot load the SavedModel in {} (Read less bytes than requested): the folder is damaged '
      'or half-copied; give a complete pushed model version (OUTPUT/serving/<version>)'
    ),
  ),
  'transform graph': (
    lambda d: shutil.rmtree(d) or _transform_graph(d),
    (
      '{} is not a `cxr run` model: it has no serving_default signature taking image_bytes and '
      'returning probabilities, class_id, class_name; give a pushed model version'
    ),
  ),
}


@pytest.mark.parametrize('damage', sorted(_DAMAGED))
def test_a_damaged_or_wrong_model_is_one_error_line(damage, output_dir, images, tmp_path, capsys):
  from pipeline import cli

  damage_fn, expected = _DAMAGED[damage]
  model = str(tmp_path / 'model')
  shutil.copytree(versioned_dir.latest_version_dir(os.path.join(output_dir, 'serving')), model)
  damage_fn(model)
  assert cli.main(['predict', '--model', model, str(images / 'a.png')]) == 2
  out, err = capsys.readouterr()
  assert not out
  assert [line for line in err.splitlines() if 'error' in line.lower()] == [err.splitlines()[-1]]
  assert err.splitlines()[-1].startswith(f'cxr predict: error: {expected.format(model)}')


def test_the_temporary_folder_of_an_unfinished_push_is_refused(output_dir, images, capsys):
  from pipeline import cli

  serving = os.path.join(output_dir, 'serving')
  temp = os.path.join(serving, versioned_dir.TEMP_PREFIX + '1')
  shutil.copytree(versioned_dir.latest_version_dir(serving), temp)  # even complete
  try:
    assert cli.main(['predict', '--model', temp, str(images / 'a.png')]) == 2
  finally:
    shutil.rmtree(temp)
  assert capsys.readouterr().err.splitlines()[-1] == (
    f'cxr predict: error: {temp} is the temporary folder of a push that did not finish, not a '
    'model: give a pushed model version (OUTPUT/serving/<version>), or re-run `cxr run` to push '
    'again'
  )


def test_the_newest_usable_version_is_chosen(output_dir, images, tmp_path, caplog):
  """Newer versions that are damaged, half-copied or not a serving model, and the temporary folder
  of an unfinished push, are skipped for the newest version that loads."""
  serving = str(tmp_path / 'output' / 'serving')
  shutil.copytree(os.path.join(output_dir, 'serving'), serving)
  newest = versioned_dir.versions(serving)[-1]
  good = os.path.join(serving, str(newest))
  for offset, damage in enumerate(sorted(_DAMAGED), start=1):
    shutil.copytree(good, os.path.join(serving, str(newest + offset)))
    _DAMAGED[damage][0](os.path.join(serving, str(newest + offset)))
  os.makedirs(os.path.join(serving, str(newest + 9), 'variables'))  # copied up to variables/
  shutil.copytree(good, os.path.join(serving, f'{versioned_dir.TEMP_PREFIX}{newest + 10}'))
  out = io.StringIO()
  assert predict.run(str(tmp_path / 'output'), [str(images / 'b.PNG')], out=out) == 0
  assert out.getvalue() == (
    f'{images / "b.PNG"}: COVID (COVID 0.800, NORMAL 0.100, VIRAL PNEUMONIA 0.100), '
    'covid_positive: yes\n'
  )
  skipped = [r.getMessage().split(':')[0] for r in caplog.records if r.levelname == 'WARNING']
  assert skipped == [f'Skipping model version {serving}/{newest + n}' for n in (9, 4, 3, 2, 1)]
  only_damaged = tmp_path / 'damaged'
  for version, damage in ((1, 'garbage saved_model.pb'), (2, 'transform graph')):
    shutil.copytree(good, only_damaged / str(version))
    _DAMAGED[damage][0](str(only_damaged / str(version)))
  shutil.copytree(good, only_damaged / f'{versioned_dir.TEMP_PREFIX}3')
  with pytest.raises(predict.NotAServingModel) as error:
    predict.load_model(str(only_damaged))
  assert str(error.value) == (
    f'No model in {only_damaged} (unusable versions: 2, 1): give a pushed model version '
    '(OUTPUT/serving/<version>), the serving folder or a `cxr run` output folder'
  )
