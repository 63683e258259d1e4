"""`cxr predict`: classifies chest X-ray image files with a pushed model's `serving_default`.

Images are read and classified in batches; a file that cannot be read or decoded gets an error
line and the others are still classified. The exit status is 1 when any file failed, else 0.
"""
import dataclasses
import json
import logging
import os
import re
import sys
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple

import tensorflow as tf

from components import labels
from components.pusher import versioned_dir
from pipeline.output_layout import layout

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif')  # what tf.io.decode_image reads
BATCH_SIZE = 4  # ResNet152V2 on CPU: 2-4 beat 1, 8+ lose (benchmarks/bench_predict.py)
SIGNATURE = 'serving_default'


@dataclasses.dataclass(frozen=True)
class Prediction:
  """The class of one image, or why it could not be classified."""
  path: str
  class_id: Optional[int] = None
  class_name: Optional[str] = None
  probabilities: Optional[Dict[str, float]] = None
  error: Optional[str] = None

  def to_json(self) -> str:
    return json.dumps({k: v for k, v in dataclasses.asdict(self).items() if v is not None})

  def to_text(self) -> str:
    if self.error:
      return f'{self.path}: error: {self.error}'
    scores = ', '.join(f'{name} {p:.3f}' for name, p in self.probabilities.items())
    return f'{self.path}: {self.class_name} ({scores})'


def resolve_model_dir(path: str) -> str:
  """The SavedModel to use: `path` itself, or the latest version of a serving folder or of
  a `cxr run` output folder (its serving/ folder)."""
  if os.path.isfile(os.path.join(path, 'saved_model.pb')):
    return path
  for base in (path, layout(path).serving_dir):
    latest = versioned_dir.latest_version_dir(base)
    if latest:
      return latest
  raise FileNotFoundError(
      f'No model in {path}: give a pushed model version (OUTPUT/serving/<version>), the serving '
      'folder or a `cxr run` output folder')


def find_images(paths: Iterable[str]) -> List[str]:
  """Files named on the command line, plus the image files found in folders (recursively)."""
  found = []
  for path in paths:
    if not os.path.isdir(path):
      found.append(path)  # missing or unreadable files get their error line later
      continue
    for parent, folders, files in os.walk(path):
      folders.sort()
      found.extend(os.path.join(parent, name) for name in sorted(files)
                   if name.lower().endswith(IMAGE_EXTENSIONS))
  return found


_TF_ERROR_NOISE = re.compile(r'^(Graph execution error:|Detected at node|<stack traces|\s)')


def _error_message(error: tf.errors.OpError) -> str:
  """The cause in a TensorFlow error, e.g. 'Invalid PNG. Failed to initialize decoder.'"""
  lines = [line for line in error.message.splitlines()
           if line.strip() and not _TF_ERROR_NOISE.match(line)]
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
  probabilities = outputs['probabilities'].numpy()
  for (path, _), class_id, class_name, row in zip(
      items, outputs['class_id'].numpy(), outputs['class_name'].numpy(), probabilities):
    yield Prediction(path, class_id=int(class_id), class_name=class_name.decode(),
                     probabilities={name: float(p) for name, p in zip(labels.CLASS_NAMES, row)})


def load_signature(model_dir: str):
  """The model's serving_default signature (image_bytes -> probabilities, class_id, class_name)."""
  return tf.saved_model.load(model_dir).signatures[SIGNATURE]


def classify(serve, image_paths: Sequence[str],
             batch_size: int = BATCH_SIZE) -> Iterator[Prediction]:
  """Predictions for `image_paths`, in order, through a serving_default signature."""
  for start in range(0, len(image_paths), batch_size):
    batch = image_paths[start:start + batch_size]
    results, readable = {}, []
    for path in batch:
      try:
        with open(path, 'rb') as f:
          readable.append((path, f.read()))
      except OSError as e:
        results[path] = Prediction(path, error=f'cannot read file: {e.strerror or e}')
    if readable:
      results.update((p.path, p) for p in _classify_batch(serve, readable))
    yield from (results[path] for path in batch)


def run(model: str, paths: Sequence[str], as_json: bool = False, out: Optional[TextIO] = None,
        err: Optional[TextIO] = None) -> int:
  """Prints one line per image (JSON objects with as_json) to `out` (stdout; text-mode errors
  to `err`, stderr); returns the exit status."""
  out, err = out or sys.stdout, err or sys.stderr
  model_dir = resolve_model_dir(model)
  images = find_images(paths)
  if not images:
    raise ValueError(f'No image files ({", ".join(IMAGE_EXTENSIONS)}) in {", ".join(paths)}')
  logging.info('Classifying %d image(s) with %s', len(images), model_dir)
  serve = load_signature(model_dir)
  failed = 0
  for prediction in classify(serve, images):
    failed += bool(prediction.error)
    if as_json:
      print(prediction.to_json(), file=out, flush=True)
    else:
      print(prediction.to_text(), file=err if prediction.error else out, flush=True)
  if failed:
    logging.warning('%d of %d image(s) could not be classified', failed, len(images))
  return 1 if failed else 0
