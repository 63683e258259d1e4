"""records: the files of per-file rows that the ingestion stages hand each other."""

import os

from components.ingestion import records


def test_rows_round_trip_one_json_array_per_line(tmp_path):
  rows = [['COVID/ä b.png', 12, None, ['PNG', 'PNG', 8, 8, 1]], [], ['line\nbreak', -1.5]]
  records.write(str(tmp_path / 'rows'), rows)
  assert list(records.read(str(tmp_path / 'rows'))) == rows
  assert (tmp_path / 'rows').read_bytes().count(b'\n') == 3


def test_chunk_writer_cuts_rows_into_numbered_files(tmp_path):
  with records.ChunkWriter(str(tmp_path / 'chunks'), rows_per_chunk=32) as chunks:
    for i in range(70):
      chunks.add([i])
  assert chunks.count == 70
  assert [os.path.basename(uri) for uri in chunks.uris] == [
    'chunk-00000',
    'chunk-00001',
    'chunk-00002',
  ]
  assert [[row[0] for row in records.read(uri)] for uri in chunks.uris] == [
    list(range(32)),
    list(range(32, 64)),
    list(range(64, 70)),
  ]
  with records.ChunkWriter(str(tmp_path / 'none'), rows_per_chunk=32) as empty:
    pass
  assert (empty.uris, empty.count, os.path.exists(tmp_path / 'none')) == ([], 0, False)


def test_chunk_writer_counts_each_rows_weight(tmp_path):
  with records.ChunkWriter(str(tmp_path / 'chunks'), rows_per_chunk=32) as chunks:
    for i in range(10):
      chunks.add([i], weight=8)
    for i in range(10, 30):
      chunks.add([i])
  assert (chunks.count, chunks.sizes) == (30, [4, 4, 18, 4])
  assert [[row[0] for row in records.read(uri)] for uri in chunks.uris] == [
    [0, 1, 2, 3],
    [4, 5, 6, 7],
    [8, 9, *range(10, 26)],  # 2 x 8 + 16 x 1
    list(range(26, 30)),
  ]
