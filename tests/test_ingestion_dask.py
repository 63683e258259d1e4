"""The ingestion on a dask.distributed cluster (`--beam-engine dask`): two worker processes on
loopback write the same bytes as the direct engine, on a set with every kind of file."""

import io
import os
import shutil

import apache_beam as beam
import distributed
import numpy as np
from PIL import Image
import pyarrow.parquet as pq
import pytest

from components import demo_data
from components.ingestion import ingest
from components.ingestion import IngestOptions
from pipeline import beam_args


def _messy_dataset(root) -> int:
  """Demo images plus duplicates, other formats, broken and non-image files; returns the file
  count."""
  demo_data.generate(str(root), train_per_class=8, test_per_class=3, min_size=32, max_size=48)
  train, test = root / 'Train', root / 'Test'
  shutil.copy(train / 'COVID' / 'covid_0000.png', train / 'COVID' / 'copy_within_train.png')
  shutil.copy(test / 'NORMAL' / 'normal_0000.png', train / 'NORMAL' / 'copy_of_a_test_image.png')
  pixels = np.random.default_rng(7).integers(0, 256, (40, 44, 3), dtype=np.uint8)
  for name, mode, fmt in (
    ('colour.jpg', 'RGB', 'JPEG'),
    ('colour.bmp', 'RGB', 'BMP'),
    ('grey16.png', 'I;16', 'PNG'),
  ):
    image = Image.fromarray(pixels, 'RGB').convert('L' if mode == 'I;16' else mode)
    if mode == 'I;16':
      image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    image.save(train / 'VIRAL PNEUMONIA' / name, format=fmt)
  png = (train / 'NORMAL' / 'normal_0001.png').read_bytes()
  (train / 'NORMAL' / 'truncated.png').write_bytes(png[: len(png) // 2])
  (train / 'COVID' / 'empty.png').write_bytes(b'')
  (train / 'COVID' / 'not_an_image.png').write_bytes(b'%PDF-1.4 not a picture')
  (root / 'README.txt').write_text('collected 2020')
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='PNG')
  (train / 'NORMAL' / '.hidden.png').write_bytes(buffer.getvalue())
  return sum(len(files) for _, _, files in os.walk(root))


def _files(folder):
  return {
    os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), 'rb').read()
    for d, _, files in os.walk(folder)
    for f in files
  }


@pytest.fixture(scope='module')
def cluster():
  with distributed.LocalCluster(
    n_workers=2, threads_per_worker=1, processes=True, host='127.0.0.1', dashboard_address=None
  ) as local_cluster:
    yield local_cluster


def test_the_ingestion_on_two_dask_workers_writes_the_direct_engines_bytes(tmp_path, cluster):
  root = tmp_path / 'data'
  file_count = _messy_dataset(root)

  def run(name, pipeline=None):
    out = tmp_path / name
    result = ingest(
      str(root),
      str(out / 'examples'),
      str(out / 'report'),
      IngestOptions(max_bad_fraction=0.2),
      pipeline,
    )
    return result, pq.read_table(result.manifest_uri).to_pylist(), out

  direct, direct_manifest, direct_out = run('direct')
  args = beam_args.compose('dask', [f'--dask_client_address={cluster.scheduler_address}'])
  with distributed.Client(cluster) as observer, distributed.get_task_stream(observer) as tasks:
    dask, dask_manifest, dask_out = run('dask', beam.Pipeline(argv=args))
  distributed.default_client().close()  # the DaskRunner's own client

  assert {task['worker'] for task in tasks.data} <= set(cluster.scheduler_info['workers'])
  assert len(tasks.data) > 0  # the work ran on the cluster's workers
  assert dask_manifest == direct_manifest
  assert dask.summary == direct.summary
  assert _files(dask_out / 'examples') == _files(direct_out / 'examples')
  assert _files(dask_out / 'report') == _files(direct_out / 'report')
  # Every input file is accounted for: 33 demo images and 10 more.
  assert len(direct_manifest) == direct.summary['files_found'] == file_count == 43
  assert direct.summary['status'] == dict(ingested=36, quarantined=3, duplicate=2, ignored=2)
