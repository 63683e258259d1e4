"""Test helper: the Trainer's inputs as the pipeline hands them over, without a pipeline: raw
tf.Examples written as split TFRecords, TFX's own Transform run on them (benchmarks.tfx_transform)
and the FnArgs that trainer.run_fn reads."""

import json
import os
import pathlib
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tfx import v1 as tfx

from benchmarks import tfx_transform
from components.ingestion import example_encoding

# A tiny, fast Trainer: 32 px grayscale, ResNet50V2 from scratch (the default's code path,
# ~3-4x faster to save and load than ResNet152V2); add epochs and batch_size.
TINY_CONFIG = {
  'preset': 'recommended',
  'image_size': 32,
  'image_channels': 1,
  'normalization': 'featurewise_center',
  'warm_start': False,
  'backbone': 'resnet50v2',
  'weights': 'none',
}


def raw_splits(train: int, eval_: int) -> Dict[str, List[bytes]]:
  """{'train': [...], 'eval': [...]} raw examples (raw_example), labels cycling 0, 1, 2."""
  rng = np.random.default_rng(0)
  return {
    split: [raw_example(i % 3, rng) for i in range(count)]
    for split, count in (('train', train), ('eval', eval_))
  }


def raw_example(label: int, rng: np.random.Generator) -> bytes:
  """A serialized raw tf.Example: a 40 px grayscale PNG whose brightness gives away `label`."""
  image = np.clip(rng.normal(60 + 70 * label, 20, (40, 40, 1)), 0, 255).astype(np.uint8)
  return example_encoding.serialize(
    tfx_transform.raw_features(tf.io.encode_png(image).numpy(), label)
  )


def transformed_fn_args(
  root: pathlib.Path, raw: Mapping[str, Sequence[bytes]], custom_config: Dict[str, Any]
) -> tfx.components.FnArgs:
  """Writes `raw` ({'train': [...], 'eval': [...]} serialized raw tf.Examples) under root/raw,
  runs the Transform (analysing train) into root/transform, and returns FnArgs exporting to
  root/serving and root/model_run with `custom_config` (which holds the image spec)."""
  patterns = {}
  for split, records in raw.items():
    patterns[split] = str(root / 'raw' / f'Split-{split}' / 'data.gz')
    os.makedirs(os.path.dirname(patterns[split]))
    with tf.io.TFRecordWriter(patterns[split], options='GZIP') as writer:
      for record in records:
        writer.write(record)
  transform_dir = str(root / 'transform')
  image = {key: custom_config[key] for key in ('image_size', 'image_channels')}
  tfx_transform.run(patterns, transform_dir, image)
  examples = os.path.join(transform_dir, tfx_transform.TRANSFORMED_EXAMPLES_DIR)
  return tfx.components.FnArgs(
    train_files=[os.path.join(examples, 'Split-train', '*')],
    eval_files=[os.path.join(examples, 'Split-eval', '*')],
    transform_graph_path=os.path.join(transform_dir, tfx_transform.TRANSFORM_GRAPH_DIR),
    serving_model_dir=str(root / 'serving'),
    model_run_dir=str(root / 'model_run'),
    custom_config=json.loads(json.dumps(custom_config)),
  )
