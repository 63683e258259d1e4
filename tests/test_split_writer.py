"""split_writer: TFRecord framing that TensorFlow reads, and the commit of bundle files to final names."""
import os

import apache_beam as beam
import tensorflow as tf

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


def test_commit_names_the_committed_files_and_drops_the_rest(tmp_path):
  temp = tmp_path / 'examples' / '.temp-x'
  temp.mkdir(parents=True)
  for name in ('train-a', 'train-b', 'test-c', 'train-retried'):
    (temp / name).write_bytes(name.encode())
  written = [('train', str(temp / 'train-b')), ('test', str(temp / 'test-c')), ('train', str(temp / 'train-a'))]
  counts = split_writer._commit(written, str(tmp_path / 'examples'), ('train', 'eval', 'test'), str(temp))
  assert counts == {'train': 2, 'eval': 0, 'test': 1}
  assert sorted(os.listdir(tmp_path / 'examples')) == ['Split-eval', 'Split-test', 'Split-train']
  train = tmp_path / 'examples' / 'Split-train'
  assert sorted(os.listdir(train)) == ['data_tfrecord-00000-of-00002', 'data_tfrecord-00001-of-00002']
  assert {(train / n).read_bytes() for n in os.listdir(train)} == {b'train-a', b'train-b'}
  assert os.listdir(tmp_path / 'examples' / 'Split-test') == ['data_tfrecord-00000-of-00001']
  assert os.listdir(tmp_path / 'examples' / 'Split-eval') == []


def test_beam_pipeline_writes_every_record_once_per_split(tmp_path):
  pairs = [('train', b'a%d' % i) for i in range(50)] + [('test', b'b%d' % i) for i in range(7)]
  argv = ['--direct_num_workers=2', '--direct_running_mode=multi_processing']  # two workers: several bundle files
  with beam.Pipeline(runner='FnApiRunner', argv=argv) as p:
    _ = p | beam.Create(pairs) | split_writer.WriteSplits(str(tmp_path), ('train', 'eval', 'test'))
  assert sorted(os.listdir(tmp_path)) == ['Split-eval', 'Split-test', 'Split-train']  # no temporary folder left
  for split, prefix in (('train', b'a'), ('test', b'b')):
    files = sorted(tf.io.gfile.glob(str(tmp_path / f'Split-{split}' / 'data_tfrecord-*')))
    assert sorted(r for f in files for r in _read(f)) == sorted(r for s, r in pairs if s == split)
    assert all(r.startswith(prefix) for f in files for r in _read(f))
  assert os.listdir(tmp_path / 'Split-eval') == []
