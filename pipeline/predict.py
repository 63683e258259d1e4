"""`cxr predict`: classifies chest X-ray image files with a pushed model's `serving_default`.

Each image gets its argmax class, the probabilities and, from a model stored with an operating
point, `covid_positive` (P(COVID) above the model's threshold); from a model with abstention,
`in_distribution`, `ood_score` and `appearance_score` (components.ood): an image outside the
training distribution is reported as not classified (its class still in the JSON). Images are
read and classified in batches. A DICOM is converted as ingestion converts it, or refused with the
reason when it is not a chest radiograph (components.dicom). Each file gets ingestion's checks
before decoding (image_header: file size and header pixel count, so a decompression bomb is never
decoded); only regular files are opened (a FIFO would block). A file that cannot be read, checked
or decoded, and a folder that cannot be listed, gets an error line and the others are still
classified. The exit status is 1 when any of them failed, else 0.
With --explain DIR, each classified image also gets a Grad-CAM overlay PNG in DIR, from the model's
`explain` signature (pipeline.predict_overlays).
"""

import dataclasses
import itertools
import json
import logging
import os
import re
import stat
import sys
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple

import tensorflow as tf

from components import dicom
from components import image_header
from components import labels
from components.ingestion.options import IngestOptions
from components.pusher import versioned_dir
from pipeline import predict_overlays
from pipeline.output_layout import layout

_MAX_IMAGE_PIXELS = IngestOptions().max_image_pixels  # ingestion's limit, checked before decoding
# The formats the serving signature decodes (tf.io.decode_image), and DICOM, converted first
# (components.dicom); ingestion reads more (components.ingestion.discovery.IMAGE_EXTENSIONS) and
# stores them as PNG.
SERVABLE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.dcm')
BATCH_SIZE = 4  # ResNet152V2 on CPU: 2-4 beat 1, 8+ lose (benchmarks/bench_predict.py)
SIGNATURE = 'serving_default'
SIGNATURE_INPUT = 'image_bytes'
SIGNATURE_OUTPUTS = ('probabilities', 'class_id', 'class_name')
# P(COVID) above the model's operating threshold (components.operating_point); models exported
# before operating points lack it.
COVID_POSITIVE = 'covid_positive'
# The out-of-distribution scores and whether both are within the model's thresholds
# (components.ood); models exported before abstention lack them, and those exported before the
# appearance score lack that one.
OOD_SCORE = 'ood_score'
APPEARANCE_SCORE = 'appearance_score'
IN_DISTRIBUTION = 'in_distribution'
NOT_CLASSIFIED = 'outside the training distribution: not classified'
_FILE_KINDS = {'d': 'a folder', 'p': 'a FIFO', 's': 'a socket', 'c': 'a device', 'b': 'a device'}


class NotAServingModel(ValueError):
  """A --model folder that holds no loadable `cxr` serving model (a user error)."""


class FileRefused(Exception):
  """An image file refused before decoding; the message is its error line."""


@dataclasses.dataclass(frozen=True)
class Prediction:
  """The class of one image, or why it could not be classified."""

  path: str
  class_id: Optional[int] = None
  class_name: Optional[str] = None
  probabilities: Optional[Dict[str, float]] = None
  covid_positive: Optional[bool] = None
  overlay: Optional[str] = None  # its Grad-CAM overlay PNG (--explain)
  in_distribution: Optional[bool] = None
  ood_score: Optional[float] = None
  appearance_score: Optional[float] = None
  error: Optional[str] = None

  def to_json(self) -> str:
    return json.dumps({k: v for k, v in dataclasses.asdict(self).items() if v is not None})

  def to_text(self) -> str:
    if self.error:
      return f'{self.path}: error: {self.error}'
    if self.in_distribution is False:
      scores = f'ood_score {self.ood_score:.4g}'
      if self.appearance_score is not None:
        scores += f', appearance_score {self.appearance_score:.4g}'
      return f'{self.path}: {NOT_CLASSIFIED} ({scores})'
    scores = ', '.join(f'{name} {p:.3f}' for name, p in self.probabilities.items())
    text = f'{self.path}: {self.class_name} ({scores})'
    if self.covid_positive is not None:
      text += f', covid_positive: {"yes" if self.covid_positive else "no"}'
    if self.overlay:
      text += f', overlay: {self.overlay}'
    return text


def find_images(paths: Iterable[str]) -> Tuple[List[str], List[Prediction]]:
  """Files named on the command line, plus the image files found in folders (recursively); and
  an error for each folder that could not be listed."""
  found, unlisted = [], []

  def listing_failed(error: OSError) -> None:
    unlisted.append(Prediction(error.filename, error=f'cannot list folder: {error.strerror}'))

  for path in paths:
    if not os.path.isdir(path):
      found.append(path)  # missing or unreadable files get their error line later
      continue
    for parent, folders, files in os.walk(path, onerror=listing_failed):
      folders.sort()
      found.extend(
        os.path.join(parent, name)
        for name in sorted(files)
        if name.lower().endswith(SERVABLE_EXTENSIONS)
      )
  return found, unlisted


_TF_ERROR_NOISE = re.compile(r'^(Graph execution error:|Detected at node|<stack traces|\s)')


def _error_message(error: tf.errors.OpError) -> str:
  """The cause in a TensorFlow error, e.g. 'Invalid PNG. Failed to initialize decoder.'"""
  lines = [
    line for line in error.message.splitlines() if line.strip() and not _TF_ERROR_NOISE.match(line)
  ]
  return re.sub(r'\s*\[Op:\S+\]$', '', lines[-1] if lines else error.message.strip())


def _classify_batch(serve, items: Sequence[Tuple[str, bytes]]) -> Iterator[Prediction]:
  """Classifies (path, bytes) items together; on a decoding error, one by one to isolate it."""
  try:
    outputs = serve(image_bytes=tf.constant([content for _, content in items]))
  except tf.errors.InvalidArgumentError as e:
    if len(items) == 1:
      yield Prediction(items[0][0], error=f'cannot decode image: {_error_message(e)}')
      return
    for item in items:
      yield from _classify_batch(serve, [item])
    return
  optional = {
    key: outputs[key].numpy().tolist() if key in outputs else [None] * len(items)
    for key in (COVID_POSITIVE, IN_DISTRIBUTION, OOD_SCORE, APPEARANCE_SCORE)
  }
  for (path, _), class_id, class_name, row, positive, inside, ood_score, appearance_score in zip(
    items,
    outputs['class_id'].numpy(),
    outputs['class_name'].numpy(),
    outputs['probabilities'].numpy(),
    *optional.values(),
  ):
    yield Prediction(
      path,
      class_id=int(class_id),
      class_name=class_name.decode(),
      probabilities={name: float(p) for name, p in zip(labels.CLASS_NAMES, row)},
      covid_positive=positive,
      in_distribution=inside,
      ood_score=ood_score,
      appearance_score=appearance_score,
    )


def _is_push_temp_dir(path: str) -> bool:
  return os.path.basename(os.path.normpath(path)).startswith(versioned_dir.TEMP_PREFIX)


def load_signature(model_dir: str):
  """The model's serving_default signature (image_bytes -> probabilities, class_id, class_name);
  raises NotAServingModel naming the folder and the fix."""
  if _is_push_temp_dir(model_dir):
    raise NotAServingModel(
      f'{model_dir} is the temporary folder of a push that did not finish, not a model: give a '
      'pushed model version (OUTPUT/serving/<version>), or re-run `cxr run` to push again'
    )
  try:
    serve = tf.saved_model.load(model_dir).signatures.get(SIGNATURE)
  except Exception as e:  # (OSError, ValueError, IndexError, ...)
    cause = (str(e).strip() or type(e).__name__).splitlines()[0][:200]
    raise NotAServingModel(
      f'Cannot load the SavedModel in {model_dir} ({cause}): the folder is damaged or '
      'half-copied; give a complete pushed model version (OUTPUT/serving/<version>)'
    ) from None
  inputs = serve.structured_input_signature[1] if serve is not None else {}
  if SIGNATURE_INPUT not in inputs or not set(SIGNATURE_OUTPUTS) <= set(serve.structured_outputs):
    raise NotAServingModel(
      f'{model_dir} is not a `cxr run` model: it has no {SIGNATURE} signature taking '
      f'{SIGNATURE_INPUT} and returning {", ".join(SIGNATURE_OUTPUTS)}; give a pushed model '
      'version (OUTPUT/serving/<version>) or a `cxr run` output folder'
    )
  return serve


def load_model(path: str) -> Tuple[str, object]:
  """(model folder, its serving_default signature): `path` itself when it holds a SavedModel,
  else the newest version of `path` or of its serving/ folder (a `cxr run` output folder) that
  loads as a serving model; unusable versions are skipped with a warning."""
  if os.path.isfile(os.path.join(path, 'saved_model.pb')) or _is_push_temp_dir(path):
    return path, load_signature(path)
  skipped = []
  for base in (path, layout(path).serving_dir):
    try:
      candidates = versioned_dir.version_dirs(base)
    except OSError as e:
      raise NotAServingModel(
        f'Cannot list {base}: {e.strerror}; give a readable model folder'
      ) from None
    for model_dir in candidates:
      try:
        return model_dir, load_signature(model_dir)
      except NotAServingModel as e:
        logging.warning('Skipping model version %s: %s', model_dir, e)
        skipped.append(os.path.basename(model_dir))
  raise NotAServingModel(
    f'No model in {path}'
    + (f' (unusable versions: {", ".join(skipped)})' if skipped else '')
    + ': give a pushed model version (OUTPUT/serving/<version>), the serving folder or a `cxr run` '
    'output folder'
  )


def read_image(path: str, max_pixels: int = _MAX_IMAGE_PIXELS) -> bytes:
  """The bytes of an image file that passes ingestion's checks before decoding (image_header), a
  DICOM converted to the PNG ingestion stores (components.dicom); raises FileRefused. Only regular
  files are opened: a FIFO or device could block or never end."""
  try:
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
      kind = _FILE_KINDS.get(stat.filemode(info.st_mode)[0], 'a special file')
      raise FileRefused(f'cannot read file: {kind}, not a regular file')
    image_header.check_file_size(info.st_size, max_pixels)
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), 'rb') as f:  # never blocks
      data = f.read()
    if dicom.is_dicom(data):
      return dicom.convert(data, max_pixels).png
    image_header.open_header(data, max_pixels)
  except OSError as e:
    raise FileRefused(f'cannot read file: {e.strerror or e}') from None
  except image_header.BadImage as bad:
    raise FileRefused(f'{bad.reason.replace("_", " ")}: {bad.detail}') from None
  return data


def classify(
  serve,
  image_paths: Sequence[str],
  batch_size: int = BATCH_SIZE,
  max_pixels: int = _MAX_IMAGE_PIXELS,
) -> Iterator[Prediction]:
  """Predictions for `image_paths`, in order, through a serving_default signature."""
  for start in range(0, len(image_paths), batch_size):
    batch = image_paths[start : start + batch_size]
    results, readable = {}, []
    for path in batch:
      try:
        readable.append((path, read_image(path, max_pixels)))
      except FileRefused as e:
        results[path] = Prediction(path, error=str(e))
    if readable:
      results.update((p.path, p) for p in _classify_batch(serve, readable))
    yield from (results[path] for path in batch)


def with_overlays(
  explain,
  predictions: Iterable[Prediction],
  out_dir: str,
  batch_size: int = BATCH_SIZE,
  max_pixels: int = _MAX_IMAGE_PIXELS,
) -> Iterator[Prediction]:
  """`predictions` in order, each classified image's with `overlay`: its Grad-CAM overlay PNG in
  `out_dir`, made by the `explain` signature (predict_overlays). The images are read again, with
  the same checks; an image whose overlay cannot be made keeps its class and gets an error."""
  names = predict_overlays.OverlayNames()
  predictions = iter(predictions)
  while batch := list(itertools.islice(predictions, batch_size)):
    images = {}
    for i, prediction in enumerate(batch):
      try:
        if not prediction.error:
          images[i] = read_image(prediction.path, max_pixels)
      except FileRefused as e:
        batch[i] = dataclasses.replace(prediction, error=f'no Grad-CAM overlay: {e}')
    overlays = {i: os.path.join(out_dir, names(batch[i].path)) for i in images}
    try:
      if images:
        predict_overlays.write_overlays(explain, list(images.values()), list(overlays.values()))
      updates = {i: {'overlay': path} for i, path in overlays.items()}
    except (tf.errors.OpError, OSError) as e:
      cause = _error_message(e) if isinstance(e, tf.errors.OpError) else e.strerror or str(e)
      updates = {i: {'error': f'no Grad-CAM overlay: {cause}'} for i in images}
    yield from (dataclasses.replace(p, **updates.get(i, {})) for i, p in enumerate(batch))


def run(
  model: str,
  paths: Sequence[str],
  as_json: bool = False,
  out: Optional[TextIO] = None,
  err: Optional[TextIO] = None,
  explain_dir: Optional[str] = None,
) -> int:
  """Prints one line per image (JSON objects with as_json) to `out` (stdout; text-mode errors
  to `err`, stderr); returns the exit status. With `explain_dir`, also writes a Grad-CAM overlay
  per image there (with_overlays), whose path each line gives."""
  out, err = out or sys.stdout, err or sys.stderr
  model_dir, serve = load_model(model)
  explain = predict_overlays.load_explain_signature(model_dir) if explain_dir else None
  images, unlisted = find_images(paths)
  if not images and not unlisted:
    raise ValueError(f'No image files ({", ".join(SERVABLE_EXTENSIONS)}) in {", ".join(paths)}')
  logging.info('Classifying %d image(s) with %s', len(images), model_dir)
  predictions = classify(serve, images)
  if explain_dir:
    predict_overlays.make_dir(explain_dir)
    logging.info('Writing Grad-CAM overlays into %s', explain_dir)
    predictions = with_overlays(explain, predictions, explain_dir)
  failed = 0
  for prediction in itertools.chain(unlisted, predictions):
    failed += bool(prediction.error)
    if as_json:
      print(prediction.to_json(), file=out, flush=True)
    else:
      print(prediction.to_text(), file=err if prediction.error else out, flush=True)
  if failed:
    logging.warning('%d of %d image(s) or folder(s) failed', failed, len(images) + len(unlisted))
  return 1 if failed else 0
