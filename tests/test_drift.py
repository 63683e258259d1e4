"""The drift gate between spans: TFDV's comparators on statistics of real generated images, the
DriftCheck and DriftGate components under LocalDagRunner, and `cxr run --allow-drift`.

Statistics are computed in memory from the tf.Examples the ingestion's own stage 3 writes
(inspection, stored bytes, to_example) for every Train/ image of a span: StatisticsGen's
generators without the Beam start-up.
"""

import glob
import io
import os
import re

import ml_metadata as mlmd
import numpy as np
from PIL import Image
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx_bsl.coders import example_coder

from components import demo_data
from components import labels
from components.drift import check
from components.drift import result as drift_result
from components.drift.component import DriftCheck
from components.drift.component import DriftGate
from components.drift.options import DriftOptions
from components.ingestion import beam_pipeline
from components.ingestion import file_table
from components.ingestion import image_check
from components.ingestion import inspection
from components.ingestion import metadata_csv
from components.ingestion.discovery import FileEntry
from components.ingestion.file_table import FileTable
from pipeline import cli
from pipeline import configs
from pipeline import local_runner
from pipeline import run_summary
import rescanned

SCHEMA_PATH = os.path.join(configs.SCHEMA_DIR, 'schema.pbtxt')
MAX_PIXELS = 10**8
EVERY_FEATURE = {
  'format',
  'source',
  'label_name',
  'width',
  'height',
  'bit_depth',
  'intensity_mean',
  'intensity_std',
}


def _write_span(root, seed, drifted=False):
  """The Train/ images of a demo span: 8 per class, 48-64 px 8-bit PNGs. `drifted`: what a new
  scanner might bring: twice the size, brighter with less contrast, half JPEG and half 16-bit
  PNG, and half of the NORMAL and VIRAL PNEUMONIA images gone (COVID half the images, not a
  third)."""
  demo_data.generate(root, train_per_class=8, test_per_class=0, seed=seed, min_size=48, max_size=64)
  if drifted:
    paths = sorted(glob.glob(os.path.join(root, 'Train', '*', '*.png')))
    for i, path in enumerate(paths):
      if f'{os.sep}COVID{os.sep}' not in path and i % 2:
        os.remove(path)
    rescanned.rescan(root)
  return root


def _statistics(root, source, views=None):
  """Statistics of the tf.Examples ingestion writes for the span's Train/ images; `views`: the
  metadata CSV's `view` cell of the i-th image (sorted by path), applied as stage 2 applies it."""
  items = []
  paths = sorted(glob.glob(os.path.join(root, 'Train', '*', '*')))
  for path in paths:
    label = labels.CLASS_NAMES.index(os.path.basename(os.path.dirname(path)))
    entry = FileEntry(os.path.relpath(path, root), path, os.path.getsize(path), source, label)
    items.append(inspection.inspect_file(entry, MAX_PIXELS, salt=b'salt'))
  if views:
    csv_path = os.path.join(root, 'metadata.csv')
    with open(csv_path, 'w') as f:
      f.write(
        'path,view\n'
        + ''.join(f'{os.path.relpath(p, root)},{views(i)}\n' for i, p in enumerate(paths))
      )
    with FileTable() as table:
      table.add_inspected(items)
      metadata_csv.apply(table.db, csv_path)
      items = [file_table.to_inspected(row) for row in table.rows()]
  examples = []
  for item in items:
    stored = image_check.stored_bytes(inspection.read_bytes(item.entry.uri), item.info, MAX_PIXELS)
    examples.append(beam_pipeline.to_example(item, stored))
  batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(examples)
  return stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())


def _without(feature, statistics):
  """A copy of `statistics` without `feature`, as data ingested before it existed."""
  copy = type(statistics)()
  copy.CopyFrom(statistics)
  kept = [f for f in copy.datasets[0].features if list(f.path.step) != [feature]]
  del copy.datasets[0].features[:]
  copy.datasets[0].features.extend(kept)
  return copy


@pytest.fixture(scope='module')
def spans(tmp_path_factory):
  """{name: statistics}: span 1, span 2 (same recipe, other seed) and a drifted span 3 from a
  new source, all without view positions (every view 'unknown'); span 1's images from siteA with
  the metadata CSV's views, all PA, then every other one AP."""
  root = tmp_path_factory.mktemp('spans')
  span_1 = _write_span(str(root / 'span-1'), seed=1)
  return {
    'span-1': _statistics(span_1, 'span-1'),
    'span-2': _statistics(_write_span(str(root / 'span-2'), seed=2), 'span-2'),
    'drifted': _statistics(_write_span(str(root / 'span-3'), 3, drifted=True), 'scannerB'),
    'PA': _statistics(span_1, 'siteA', views=lambda i: 'PA'),
    'half AP': _statistics(span_1, 'siteA', views=lambda i: 'ap' if i % 2 else 'PA'),
  }


def test_a_span_unlike_the_last_is_stopped_naming_each_feature(spans):
  schema = tfdv.load_schema_text(SCHEMA_PATH)
  result = check.compare(spans['drifted'], spans['span-1'], schema, 3, 1)
  tfdv_says = tfdv.validate_statistics(
    spans['drifted'], schema, previous_statistics=spans['span-1']
  )
  assert {d.feature for d in result.drifted} == set(tfdv_says.anomaly_info) == EVERY_FEATURE
  assert not result.accepted and result.note == ''
  message = result.summary()
  assert '\n' not in message
  assert message.startswith('Span 3 drifted from span 1 (train split): ')
  assert message.endswith(
    'check the new data, or pass --allow-drift (allow_drift=True in the API) to train on it'
  )
  for d in result.drifted:  # each feature with its distance and threshold
    assert f'{d.feature} {d.measure} {d.distance:.3f} > {d.threshold:g}' in message
    assert d.distance > d.threshold
  by_feature = {d.feature: d for d in result.distances}
  assert by_feature['format'].measure == 'L-infinity'
  assert by_feature['format'].distance == pytest.approx(0.5)  # half JPEG now
  assert by_feature['label_name'].distance == pytest.approx(1 / 2 - 1 / 3)
  assert by_feature['width'].measure == 'Jensen-Shannon'
  assert drift_result.DriftResult.from_json(result.to_json()) == result


def test_a_span_like_the_last_passes_and_span_folder_sources_are_not_compared(spans):
  schema = tfdv.load_schema_text(SCHEMA_PATH)
  result = check.compare(spans['span-2'], spans['span-1'], schema, 2, 1)
  assert result.drifted == [] and result.accepted
  assert {d.feature for d in result.distances} == EVERY_FEATURE - {'source'} | {'view_position'}
  by_feature = {d.feature: d for d in result.distances}
  assert by_feature['view_position'].distance == 0  # every view unknown in both spans
  assert result.summary() == (
    'span 2 vs span 1 (train split): no drift; '
    'source not compared: both spans name their span folder as the source'
  )
  # TFDV alone flags the source: each span's images are all 'span-N'.
  tfdv_says = tfdv.validate_statistics(spans['span-2'], schema, previous_statistics=spans['span-1'])
  assert set(tfdv_says.anomaly_info) == {'source'}


def test_a_change_of_view_mix_is_drift_and_spans_without_views_are_not(spans):
  schema = tfdv.load_schema_text(SCHEMA_PATH)
  result = check.compare(spans['half AP'], spans['PA'], schema, 2, 1)
  [drifted] = result.drifted  # the same images, only their views changed
  assert (drifted.feature, drifted.measure, drifted.distance) == (
    'view_position',
    'L-infinity',
    0.5,
  )
  assert not result.accepted
  assert result.summary().startswith(
    'Span 2 drifted from span 1 (train split): view_position L-infinity 0.500 > 0.1; '
  )
  # Statistics without the feature (ingested before it existed): nothing to compare on it.
  for current, previous in (
    (_without('view_position', spans['span-2']), _without('view_position', spans['span-1'])),
    (spans['span-2'], _without('view_position', spans['span-1'])),
  ):
    result = check.compare(current, previous, schema, 2, 1)
    assert result.accepted
    assert 'view_position' not in {d.feature for d in result.distances}
    assert {d.feature for d in result.distances} == EVERY_FEATURE - {'source'}


@tfx.dsl.components.component
def Trained(marker: tfx.dsl.components.Parameter[str]) -> None:  # noqa: N802
  """Stands for the Transform and the Trainer: writes `marker` when it runs."""
  with open(marker, 'w') as f:
    f.write('ran')


def _statistics_dir(root, name, statistics):
  folder = os.path.join(root, name)
  os.makedirs(os.path.join(folder, 'Split-train'), exist_ok=True)
  with open(os.path.join(folder, 'Split-train', 'FeatureStats.pb'), 'wb') as f:
    f.write(statistics.SerializeToString())
  return folder


def _run(root, statistics_uri, span, options, marker):
  """The drift part of the pipeline on imported statistics of `span`, then a stand-in Trainer."""
  statistics = tfx.dsl.Importer(
    source_uri=statistics_uri,
    artifact_type=standard_artifacts.ExampleStatistics,
    properties={'span': span, 'split_names': '["train"]'},
    custom_properties={'tfx_version': '1.16.0'},
  ).with_id('statistics')
  schema = tfx.components.ImportSchemaGen(schema_file=SCHEMA_PATH)
  drift_check = DriftCheck(
    statistics=statistics.outputs['result'],
    schema=schema.outputs['schema'],
    reference_dir=os.path.join(root, 'drift_reference'),
    **options.to_config(),
  )
  drift_gate = DriftGate(report=drift_check.outputs['report'])
  trained = Trained(marker=marker)
  trained.add_upstream_node(drift_gate)
  metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
    os.path.join(root, 'metadata.sqlite')
  )
  tfx.orchestration.LocalDagRunner().run(
    tfx.dsl.Pipeline(
      pipeline_name='drift-test',
      pipeline_root=os.path.join(root, 'pipeline'),
      components=[statistics, schema, drift_check, drift_gate, trained],
      metadata_connection_config=metadata,
      enable_cache=False,
    )
  )


def _reports(root):
  store = mlmd.MetadataStore(
    tfx.orchestration.metadata.sqlite_metadata_connection_config(
      os.path.join(root, 'metadata.sqlite')
    )
  )
  return store.get_artifacts_by_type('cxr.DriftReport')


def test_cxr_run_stops_a_drifted_span_before_training_and_allow_drift_trains(
  spans, tmp_path, capsys, monkeypatch
):
  """`cxr run` with the runner replaced by the drift part of the pipeline (the real components
  under LocalDagRunner, the flags through RunOptions): span 1 passes as the first span; the
  drifted span 3 stops with one line (exit 2), before the stand-in Trainer, and is no reference;
  with --allow-drift it trains and becomes the reference the next span like it is compared with."""
  root = str(tmp_path)
  uris = {name: _statistics_dir(root, name, stats) for name, stats in spans.items()}
  marker = os.path.join(root, 'trained')
  plan = iter([('span-1', 1), ('drifted', 3), ('drifted', 3), ('drifted', 4)])

  def run(options, console):
    name, span = next(plan)
    _run(root, uris[name], span, options.drift, marker)

  monkeypatch.setattr(local_runner, 'run', run)
  monkeypatch.setattr(run_summary, 'summarize', lambda *args: 'summary')
  argv = ['run', '--data', root, '--output', os.path.join(root, 'out')]

  assert cli.main(argv) == 0 and os.path.exists(marker)
  [first] = _reports(root)
  assert first.custom_properties['summary'].string_value == (
    'span 1: no earlier span accepted: nothing to compare (first span)'
  )
  os.remove(marker)

  assert cli.main(argv) == 2
  error = capsys.readouterr().err
  assert error.count('\n') == 1 and 'Traceback' not in error  # one line
  assert error.startswith('cxr run: error: Span 3 drifted from span 1 (train split): ')
  for feature in EVERY_FEATURE:
    assert re.search(rf'\b{feature} (L-infinity|Jensen-Shannon) [\d.]+ > [\d.]+[,;]', error)
  assert not os.path.exists(marker)  # stopped before the Trainer
  assert _reports(root)[-1].custom_properties['accepted'].int_value == 0  # recorded for history
  assert sorted(os.listdir(os.path.join(root, 'drift_reference'))) == ['span-1']

  assert cli.main([*argv, '--allow-drift']) == 0 and os.path.exists(marker)
  allowed = _reports(root)[-1].custom_properties
  assert allowed['accepted'].int_value == 1
  assert allowed['summary'].string_value.startswith(
    'span 3 vs span 1 (train split): drifted, allowed: '
  )
  assert set(allowed['drifted'].string_value.split(',')) == EVERY_FEATURE
  assert sorted(os.listdir(os.path.join(root, 'drift_reference'))) == ['span-1', 'span-3']

  assert cli.main(argv) == 0  # span 4, like span 3: compared with span 3, no drift
  assert _reports(root)[-1].custom_properties['summary'].string_value == (
    'span 4 vs span 3 (train split): no drift'
  )


def test_allow_drift_flag_reaches_the_drift_check():
  def parse(*argv):
    args = cli.build_parser().parse_args(['run', '--data', 'd', '--output', 'o', *argv])
    return cli.run_options_from_args(args)

  assert parse().drift == DriftOptions() and DriftOptions().allow_drift is False
  assert parse('--allow-drift').drift.to_config() == {'allow_drift': True}


@pytest.mark.parametrize(
  'pixels, mode, expected',
  [
    (np.array([[0, 255], [255, 255]], np.uint8), 'L', (8, 0.75, np.sqrt(3) / 4)),
    (np.array([[0, 65535], [0, 65535]], np.uint16), 'I;16', (16, 0.5, 0.5)),
    (np.array([[0, 1], [1, 1]], bool), '1', (1, 0.75, np.sqrt(3) / 4)),
    (np.full((2, 2, 3), 51, np.uint8), 'RGB', (8, 0.2, 0.0)),
  ],
)
def test_pixel_summary_scales_each_bit_depth_to_0_1(pixels, mode, expected):
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format='PNG')
  summary = image_check.pixel_summary(out.getvalue())
  assert Image.open(io.BytesIO(out.getvalue())).mode == mode
  assert (summary.bit_depth, summary.intensity_mean, summary.intensity_std) == pytest.approx(
    expected
  )
