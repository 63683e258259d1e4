"""Runs TFX's own Transform executor on raw tf.Example TFRecords, for benchmarks and tests.

The same executor, preprocessing_fn and output layout as the pipeline's Transform, without a
pipeline: `{output_dir}/transform_graph` and
`{output_dir}/transformed_examples/Split-{split}/transformed_examples-*.gz`.
"""

import glob
import json
import os
import pathlib
from typing import Any, Dict, Mapping, Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.tf_metadata import schema_utils
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import transform_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx.utils import proto_utils

from components import features
from components import labels
from components.ingestion import example_encoding
from components.ingestion import image_check
from pipeline import beam_args
from pipeline import configs

TRANSFORM_GRAPH_DIR = 'transform_graph'
TRANSFORMED_EXAMPLES_DIR = 'transformed_examples'

# The raw features preprocessing_fn reads, shaped as in schemas/schema.pbtxt (dense [batch, 1]):
# the tests' examples hold these (raw_features).
RAW_FEATURE_SPEC = {
  features.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
  features.INTENSITY_MEAN_KEY: tf.io.FixedLenFeature([1], tf.float32),
  features.LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
}


def raw_features(encoded: bytes, label: int) -> Dict[str, Any]:
  """The features of RAW_FEATURE_SPEC for one image, as ingestion writes them (its
  intensity_mean from image_check.pixel_summary), for example_encoding.serialize."""
  return {
    features.IMAGE_KEY: encoded,
    features.INTENSITY_MEAN_KEY: image_check.pixel_summary(encoded).intensity_mean,
    features.LABEL_KEY: label,
  }


def write_class_folders(root: str, path: str, copies: int = 1) -> int:
  """Writes every root/<class name>/*.png as a raw tf.Example (image bytes, label), `copies`
  times over, into the uncompressed TFRecord `path` (not named .gz), as ingestion writes them;
  returns the number of records."""
  records = [
    example_encoding.serialize(raw_features(pathlib.Path(png_path).read_bytes(), label))
    for label, name in enumerate(labels.CLASS_NAMES)
    for png_path in sorted(glob.glob(os.path.join(root, name, '*.png')))
  ]
  with tf.io.TFRecordWriter(path) as writer:
    for record in records * copies:
      writer.write(record)
  return len(records) * copies


def run(
  raw_examples: Mapping[str, str],
  output_dir: str,
  custom_config: Optional[Dict[str, Any]] = None,
  analyze_splits: Sequence[str] = ('train',),
  beam_pipeline_args: Sequence[str] = (
    *configs.BEAM_PIPELINE_ARGS,
    *beam_args.DIRECT_TRANSFORM_ARGS,
  ),
) -> tft.TFTransformOutput:
  """Analyzes `analyze_splits` and transforms every split of `raw_examples` (split -> TFRecord
  file, gzip when it ends with .gz, linked into the artifact's layout) with the pipeline's
  preprocessing_fn."""
  examples = standard_artifacts.Examples()
  examples.uri = os.path.join(output_dir, 'raw_examples')
  for split, path in raw_examples.items():
    os.makedirs(os.path.join(examples.uri, f'Split-{split}'))
    os.symlink(
      os.path.abspath(path), os.path.join(examples.uri, f'Split-{split}', os.path.basename(path))
    )
  examples.split_names = artifact_utils.encode_split_names(list(raw_examples))
  schema = standard_artifacts.Schema()
  schema.uri = os.path.join(output_dir, 'schema')
  io_utils.write_pbtxt_file(
    os.path.join(schema.uri, 'schema.pbtxt'),
    schema_utils.schema_from_feature_spec(RAW_FEATURE_SPEC),
  )
  graph = standard_artifacts.TransformGraph()
  graph.uri = os.path.join(output_dir, TRANSFORM_GRAPH_DIR)
  transformed = standard_artifacts.Examples()
  transformed.uri = os.path.join(output_dir, TRANSFORMED_EXAMPLES_DIR)
  executor = transform_executor.Executor(
    base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=list(beam_pipeline_args), tmp_dir=os.path.join(output_dir, 'tmp')
    )
  )
  executor.Do(
    {'examples': [examples], 'schema': [schema]},
    {'transform_graph': [graph], 'transformed_examples': [transformed]},
    {
      'preprocessing_fn': configs.PREPROCESSING_FN,
      'custom_config': json.dumps(custom_config or {}),
      'splits_config': proto_utils.proto_to_json(
        transform_pb2.SplitsConfig(analyze=list(analyze_splits), transform=list(raw_examples))
      ),
      'disable_statistics': 1,
    },
  )
  return tft.TFTransformOutput(graph.uri)
