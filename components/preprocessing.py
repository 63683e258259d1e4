"""Transform: decodes each image once into a compact resized PNG and learns the train-split mean.

`preprocessing_fn` is what the TFX Transform runs (configs.PREPROCESSING_FN). `transform_locally`
runs the same function with tf.Transform on Beam outside a pipeline (tests, benchmarks) and
writes the Transform component's output layout.
"""
import functools
import logging
import os
import tempfile
from typing import Any, Dict, Mapping, Optional, Sequence

import apache_beam as beam
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io
from tensorflow_transform.tf_metadata import schema_utils
from tfx_bsl.coders import example_coder
from tfx_bsl.public import tfxio

from components import features
from components import image_ops
from pipeline import configs

TRANSFORM_GRAPH_DIR = 'transform_graph'
TRANSFORMED_EXAMPLES_DIR = 'transformed_examples'

# The raw features preprocessing_fn reads, shaped as in schemas/schema.pbtxt (dense [batch, 1]).
_RAW_FEATURE_SPEC = {
    features.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
    features.LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
}


def preprocessing_fn(inputs: Dict[str, tf.Tensor],
                     custom_config: Optional[Dict[str, Any]] = None) -> Dict[str, tf.Tensor]:
  """Raw `image` [batch, 1] and `label` [batch, 1] -> the Transform outputs.

  custom_config keys: `image_size` (default configs.IMAGE_SIZE), `image_channels` (1 or 3,
  default configs.IMAGE_CHANNELS).

  Outputs:
    pixels_xf: string [batch], PNG of the decoded, resized uint8 image (size x size x channels).
    pixel_mean_xf: float32 [batch, channels], the per-channel mean of pixels / 255 over every
      pixel of every analyzed (train) image, i.e. Keras ImageDataGenerator.fit's
      `np.mean(x, axis=(0, 1, 2))`; the same vector on every example.
    label_xf: int64 [batch], the label unchanged (a scalar per example).
  """
  config = custom_config or {}
  image_size = int(config.get('image_size', configs.IMAGE_SIZE))
  channels = int(config.get('image_channels', configs.IMAGE_CHANNELS))
  pixels = tf.map_fn(
      lambda encoded: image_ops.decode_resized(encoded, image_size, channels),
      tf.reshape(inputs[features.IMAGE_KEY], [-1]),
      fn_output_signature=tf.TensorSpec([image_size, image_size, channels], tf.uint8))
  # Every image has the same size, so the mean of per-image means is the mean over all pixels.
  image_means = tf.reduce_mean(tf.cast(pixels, tf.float32) / 255.0, axis=[1, 2])
  pixel_mean = tft.mean(image_means, reduce_instance_dims=False)
  return {
      features.PIXELS_XF: tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.string),
      features.PIXEL_MEAN_XF: tf.zeros_like(image_means) + pixel_mean,
      features.LABEL_XF: tf.reshape(inputs[features.LABEL_KEY], [-1]),
  }


def transform_locally(raw_examples: Mapping[str, str],
                      output_dir: str,
                      custom_config: Optional[Dict[str, Any]] = None,
                      analyze_splits: Sequence[str] = ('train',),
                      beam_pipeline_args: Optional[Sequence[str]] = None) -> tft.TFTransformOutput:
  """Runs preprocessing_fn as the Transform component does, on TFRecords of raw tf.Examples.

  raw_examples: split name -> file pattern (e.g. ingestion's `Split-train/data_tfrecord-*`).
  Runs on Beam's FnApiRunner in this process (what the DirectRunner picks for batch pipelines,
  minus its attempt to download the Prism runner); `beam_pipeline_args` may set
  --direct_running_mode and --direct_num_workers.

  Analyzes `analyze_splits` only, transforms every split, and writes into an empty `output_dir`
  `{output_dir}/transform_graph` (with the raw metadata) and
  `{output_dir}/transformed_examples/Split-{split}/transformed_examples-*.gz`.
  """
  missing = set(analyze_splits) - set(raw_examples)
  if missing:
    raise ValueError(f'analyze_splits {sorted(missing)} not among the splits {sorted(raw_examples)}')
  if tf.io.gfile.exists(output_dir) and tf.io.gfile.listdir(output_dir):
    raise FileExistsError(f'Transform output dir {output_dir} is not empty')
  schema = schema_utils.schema_from_feature_spec(_RAW_FEATURE_SPEC)
  graph_dir = os.path.join(output_dir, TRANSFORM_GRAPH_DIR)
  logging.info('Transform: analyzing %s, transforming %s into %s', list(analyze_splits),
               sorted(raw_examples), output_dir)
  with tempfile.TemporaryDirectory() as temp_dir, beam.Pipeline(
      runner='FnApiRunner', argv=list(beam_pipeline_args or [])) as pipeline, \
      tft_beam.Context(temp_dir=temp_dir):
    sources = {split: tfxio.TFExampleRecord(pattern, schema=schema)
               for split, pattern in raw_examples.items()}
    raw = {split: pipeline | f'Read[{split}]' >> source.BeamSource()
           for split, source in sources.items()}
    adapter_config = sources[analyze_splits[0]].TensorAdapterConfig()
    analyze_data = [raw[split] for split in analyze_splits] | 'AnalyzeSplits' >> beam.Flatten()
    transform_fn = ((analyze_data, adapter_config)
                    | tft_beam.AnalyzeDataset(
                        functools.partial(preprocessing_fn, custom_config=custom_config)))
    _ = transform_fn | tft_beam.WriteTransformFn(graph_dir)
    for split, data in raw.items():
      transformed, _ = (((data, adapter_config), transform_fn)
                        | f'Transform[{split}]' >> tft_beam.TransformDataset(
                            output_record_batches=True))
      prefix = os.path.join(output_dir, TRANSFORMED_EXAMPLES_DIR, f'Split-{split}',
                            TRANSFORMED_EXAMPLES_DIR)
      _ = (transformed
           | f'Encode[{split}]' >> beam.FlatMapTuple(
               lambda batch, _: example_coder.RecordBatchToExamplesEncoder().encode(batch))
           | f'Write[{split}]' >> beam.io.WriteToTFRecord(prefix, file_name_suffix='.gz'))
  metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                             os.path.join(graph_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
  return tft.TFTransformOutput(graph_dir)
