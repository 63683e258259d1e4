"""split_writer: TFRecord framing that TensorFlow reads, deterministic shards, and the commit of
their files."""

import os

import apache_beam as beam
import tensorflow as tf

from components.ingestion import records
from components.ingestion import split_writer


def _read(path):
  return [r.numpy() for r in tf.data.TFRecordDataset(path)]  # checks both CRCs of every frame


def test_records_round_trip_through_tensorflow(tmp_path):
  records = [b'', b'x', os.urandom(70_000)]
  with open(tmp_path / 'file', 'wb') as f:
    for record in records:
      split_writer.write_record(f, record)
  assert _read(str(tmp_path / 'file')) == records
  with tf.io.TFRecordWriter(str(tmp_path / 'tf')) as writer:
    for record in records:
      writer.write(record)
  assert (tmp_path / 'file').read_bytes() == (tmp_path / 'tf').read_bytes()


def test_shard_lists_cut_a_split_into_equal_contiguous_shards(tmp_path):
  rows = [[i, f'row {i}'] for i in range(600)]
  shards = list(
    split_writer.write_shard_lists(
      'train', iter(rows), len(rows), str(tmp_path), records_per_shard=256
    )
  )
  assert [key for key, _ in shards] == [('train', 0, 3), ('train', 1, 3), ('train', 2, 3)]
  assert [os.path.basename(uri) for _, uri in shards] == [
    'train-00000-of-00003',
    'train-00001-of-00003',
    'train-00002-of-00003',
  ]
  assert [list(records.read(uri)) for _, uri in shards] == [rows[:200], rows[200:400], rows[400:]]
  assert [
    key for key, _ in split_writer.write_shard_lists('eval', iter(rows[:5]), 5, str(tmp_path))
  ] == [('eval', 0, 1)]
  assert list(split_writer.write_shard_lists('test', iter([]), 0, str(tmp_path))) == []


def test_commit_names_the_committed_files_and_drops_the_rest(tmp_path):
  temp = tmp_path / 'examples' / '.temp-x'
  temp.mkdir(parents=True)
  for name in ('a', 'b', 'c', 'retried'):
    (temp / name).write_bytes(name.encode())
  final = lambda split, i, n: split_writer.shard_path(str(tmp_path / 'examples'), (split, i, n))
  written = [
    (str(temp / 'b'), final('train', 1, 2)),
    (str(temp / 'c'), final('test', 0, 1)),
    (str(temp / 'a'), final('train', 0, 2)),
  ]
  split_writer._commit(written, str(tmp_path / 'examples'), ('train', 'eval', 'test'), str(temp))
  assert sorted(os.listdir(tmp_path / 'examples')) == ['Split-eval', 'Split-test', 'Split-train']
  train = tmp_path / 'examples' / 'Split-train'
  assert sorted(os.listdir(train)) == [
    'data_tfrecord-00000-of-00002',
    'data_tfrecord-00001-of-00002',
  ]
  assert (train / 'data_tfrecord-00000-of-00002').read_bytes() == b'a'
  assert os.listdir(tmp_path / 'examples' / 'Split-test') == ['data_tfrecord-00000-of-00001']
  assert os.listdir(tmp_path / 'examples' / 'Split-eval') == []


def _write(out, items_by_split, lists):
  shards = [
    shard
    for split, items in items_by_split.items()
    for shard in split_writer.write_shard_lists(
      split, items, len(items), str(lists), records_per_shard=8
    )
  ]
  argv = [
    '--direct_num_workers=2',
    '--direct_running_mode=multi_processing',
  ]  # two workers share the shards
  with beam.Pipeline(runner='FnApiRunner', argv=argv) as p:
    _ = (
      p
      | beam.Create(shards)
      | split_writer.WriteSplits(str(out), ('train', 'eval', 'test'), encode=str.encode)
    )


def test_beam_pipeline_writes_each_split_in_order_and_the_same_bytes_every_run(tmp_path):
  items = {
    'train': [f'a{i:02d}' for i in range(50)],
    'eval': [],
    'test': [f'b{i}' for i in range(7)],
  }
  _write(tmp_path / 'one', items, tmp_path / 'lists')
  _write(tmp_path / 'two', items, tmp_path / 'lists')
  assert sorted(os.listdir(tmp_path / 'one')) == [
    'Split-eval',
    'Split-test',
    'Split-train',
  ]  # no temporary folder
  for split in ('train', 'test'):
    files = sorted(tf.io.gfile.glob(str(tmp_path / 'one' / f'Split-{split}' / 'data_tfrecord-*')))
    assert len(files) == -(-len(items[split]) // 8)
    assert [r.decode() for f in files for r in _read(f)] == items[split]
  assert os.listdir(tmp_path / 'one' / 'Split-eval') == []
  for name in tf.io.gfile.glob(str(tmp_path / 'one' / 'Split-*' / '*')):
    assert open(name, 'rb').read() == open(name.replace('/one/', '/two/'), 'rb').read()
