"""ML Metadata on a real MySQL-protocol server (MariaDB) that the fixture starts on loopback.

The server comes from scripts/install_test_services.sh (mariadb-server); the test is skipped with
that hint only when no server binary is installed.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from pipeline import beam_args
from pipeline import metadata_config
from pipeline import metadata_queries
from pipeline.output_layout import layout

USER, DATABASE = 'cxr', 'cxr_metadata'
PASSWORD = 'cxr-test-"pass\\word'  # a quote and a backslash: printed escaped, as below
PASSWORD_FORMS = (
  PASSWORD,
  r'cxr-test-\"pass\\word',  # as is; in a text-format proto (TFX's log)
  r'cxr-test-"pass\\word',
)  # in a repr


def _find(*names):
  for name in names:
    path = shutil.which(name) or shutil.which(name, path='/usr/sbin:/usr/local/sbin')
    if path:
      return path
  return None


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _wait_for_server(port, process, log_path, timeout=60.0):
  import pymysql

  deadline = time.monotonic() + timeout
  while True:
    try:
      return pymysql.connect(host='127.0.0.1', port=port, user='root', password='')
    except pymysql.err.OperationalError:
      if process.poll() is not None or time.monotonic() > deadline:
        with open(log_path, encoding='utf-8', errors='replace') as f:
          raise RuntimeError(f'MariaDB did not start on port {port}:\n{f.read()[-3000:]}') from None
      time.sleep(0.2)


@pytest.fixture(scope='module')
def mysql_address(tmp_path_factory):
  """HOST:PORT/DATABASE of a fresh MariaDB server, with account USER that may create DATABASE."""
  server, install_db = _find('mariadbd', 'mysqld'), _find('mariadb-install-db', 'mysql_install_db')
  if not server or not install_db:
    pytest.skip('No MariaDB/MySQL server installed: run scripts/install_test_services.sh')
  base = tmp_path_factory.mktemp('mariadb')
  datadir, log_path = base / 'data', base / 'server.log'
  as_root = ['--user=root'] if os.geteuid() == 0 else []
  subprocess.run(
    [
      install_db,
      '--no-defaults',
      f'--datadir={datadir}',
      '--skip-test-db',
      '--auth-root-authentication-method=normal',
    ]
    + as_root,
    check=True,
    capture_output=True,
  )
  port = _free_port()
  with open(log_path, 'w', encoding='utf-8') as log:
    process = subprocess.Popen(
      [
        server,
        '--no-defaults',
        f'--datadir={datadir}',
        f'--port={port}',
        '--bind-address=127.0.0.1',
        f'--socket={base / "mysqld.sock"}',
        f'--pid-file={base / "mysqld.pid"}',
        '--innodb-buffer-pool-size=32M',
        '--skip-name-resolve',
      ]
      + as_root,
      stdout=log,
      stderr=subprocess.STDOUT,
    )
  try:
    root = _wait_for_server(port, process, log_path)
    with root.cursor() as cursor:
      cursor.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (USER, PASSWORD))
      cursor.execute(f"GRANT ALL PRIVILEGES ON `{DATABASE}%%`.* TO %s@'127.0.0.1'", (USER,))
    root.close()
    yield f'127.0.0.1:{port}/{DATABASE}'
  finally:
    process.terminate()
    process.wait(timeout=60)


@pytest.fixture
def account(monkeypatch):
  monkeypatch.setenv(metadata_config.USER_ENV, USER)
  monkeypatch.setenv(metadata_config.PASSWORD_ENV, PASSWORD)


def test_artifacts_written_through_one_connection_are_read_through_another(mysql_address, account):
  from ml_metadata.metadata_store import metadata_store
  from ml_metadata.proto import metadata_store_pb2

  metadata_config.check_usable(metadata_config.mysql_config(mysql_address))
  writer = metadata_store.MetadataStore(metadata_config.mysql_config(mysql_address))
  model_type = writer.put_artifact_type(
    metadata_store_pb2.ArtifactType(name='Model', properties={'version': metadata_store_pb2.INT})
  )
  artifact = metadata_store_pb2.Artifact(type_id=model_type, uri='/serving/1')
  artifact.properties['version'].int_value = 1
  artifact.custom_properties['accuracy'].double_value = 0.93
  [artifact_id] = writer.put_artifacts([artifact])

  reader = metadata_store.MetadataStore(metadata_config.mysql_config(mysql_address))
  [found] = reader.get_artifacts_by_id([artifact_id])
  assert found.uri == '/serving/1'
  assert found.properties['version'].int_value == 1
  assert metadata_queries.custom_property(found, 'accuracy') == pytest.approx(0.93)

  import pymysql

  host, port = mysql_address.split('/')[0].split(':')
  with (
    pymysql.connect(
      host=host, port=int(port), user=USER, password=PASSWORD, database=DATABASE
    ) as connection,
    connection.cursor() as cursor,
  ):
    cursor.execute('SELECT uri FROM Artifact WHERE id = %s', (artifact_id,))
    assert cursor.fetchone() == ('/serving/1',)  # stored in the server, not in a local file


def test_wrong_password_or_no_server_is_reported_with_the_servers_reason(
  mysql_address, monkeypatch
):
  monkeypatch.setenv(metadata_config.USER_ENV, USER)
  monkeypatch.setenv(metadata_config.PASSWORD_ENV, 'wrong')
  config = metadata_config.mysql_config(mysql_address)
  with pytest.raises(
    ConnectionError,
    match=f'Cannot use the metadata store MySQL {USER}@{mysql_address}: '
    f"Access denied for user '{USER}'",
  ):
    metadata_config.check_usable(config)
  config.mysql.port = _free_port()
  with pytest.raises(ConnectionError, match="Can't connect to MySQL server on '127.0.0.1'"):
    metadata_config.check_usable(config, timeout_seconds=2)


def test_pipeline_steps_record_and_reuse_results_in_mysql(mysql_address, account, tmp_path):
  """Ingestion and StatisticsGen of the real pipeline (a partial run) against the server, twice:
  the second run reuses both results from the MySQL store; `cxr history` reads them back."""
  from tfx import v1 as tfx
  from tfx.orchestration import pipeline as tfx_pipeline

  from components import demo_data
  from pipeline import history
  from pipeline import local_runner
  from pipeline.run_options import RunOptions

  data_root, output_dir = str(tmp_path / 'data'), str(tmp_path / 'output')
  demo_data.generate(data_root, train_per_class=3, test_per_class=1, min_size=16, max_size=24)
  options = RunOptions(
    data_root=data_root,
    output_dir=output_dir,
    metadata_mysql=mysql_address,
    beam_pipeline_args=beam_args.compose('direct', ['--direct_running_mode=in_memory']),
  )
  steps = tfx_pipeline.RunOptions(to_nodes=['StatisticsGen'])
  for _ in range(2):
    tfx.orchestration.LocalDagRunner().run(local_runner.build(options), run_options=steps)

  assert not os.path.exists(layout(output_dir).metadata_path)  # nothing went to SQLite
  first, second = history.read_history(output_dir, metadata_config.mysql_config(mysql_address))
  assert first.ran == ['ImageFolderExampleGen', 'StatisticsGen'] and first.cached == []
  assert second.cached == ['ImageFolderExampleGen', 'StatisticsGen'] and second.ran == []
  assert first.span == second.span == 0  # no span-N folders


def _database_text(address):
  """Every row of every table of the database at HOST:PORT/DATABASE, as text."""
  import pymysql

  server = metadata_config.parse_mysql_address(address)
  with (
    pymysql.connect(
      host=server.host, port=server.port, user=USER, password=PASSWORD, database=server.database
    ) as connection,
    connection.cursor() as cursor,
  ):
    cursor.execute('SHOW TABLES')
    tables = [name for (name,) in cursor.fetchall()]
    rows = []
    for table in tables:
      cursor.execute(f'SELECT * FROM `{table}`')
      rows += [
        cell.decode('utf-8', 'replace') if isinstance(cell, bytes) else str(cell)
        for row in cursor.fetchall()
        for cell in row
      ]
  assert 'Execution' in tables and len(rows) > 100  # the run's executions and artifacts are there
  return '\n'.join(rows)


def _add_dicom_images(data_root):
  """One DICOM chest image of the identified test patient per class of Train/ (pydicom's CT, MR
  and a JPEG-lossless slice)."""
  from pydicom import uid

  from components import labels
  import dicom_files

  sources = (
    lambda: dicom_files.read('CT_small.dcm'),
    lambda: dicom_files.read('MR_small.dcm'),
    dicom_files.jpeg_lossless,
  )
  for name, source in zip(labels.CLASS_NAMES, sources):
    ds = dicom_files.chest(source())
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    (data_root / 'Train' / name / 'patient.dcm').write_bytes(dicom_files.to_bytes(ds))


@pytest.mark.e2e
def test_no_secret_or_identifier_reaches_a_log_metadata_report_or_artifact_of_a_real_run(
  mysql_address, tmp_path
):
  """`cxr -v run` against the server, to the pushed model, on demo PNGs plus DICOM files of an
  identified patient: neither the password nor any identifying DICOM value (name, id, birth date,
  accession number, institution, physicians, ...) is in the console log (TFX logs its deployment
  config), the metadata database, or the files of the output folder (artifacts, pipeline IR,
  report, model card)."""
  from components import demo_data
  import dicom_files
  from pipeline import log_redaction

  data_root, output_dir = tmp_path / 'data', tmp_path / 'output'
  demo_data.generate(str(data_root), train_per_class=4, test_per_class=2, min_size=32, max_size=48)
  _add_dicom_images(data_root)
  address = mysql_address + '_run'  # a database of its own: the other tests count its runs
  env = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join(sys.path),
    **{metadata_config.USER_ENV: USER, metadata_config.PASSWORD_ENV: PASSWORD},
  )
  result = subprocess.run(
    [
      sys.executable,
      '-m',
      'pipeline.cli',
      '-v',
      'run',
      '--data',
      str(data_root),
      '--output',
      str(output_dir),
      '--metadata-mysql',
      address,
      '--demo',
      '--backbone',
      'resnet50v2',
      '--epochs',
      '1',
      '--image-size',
      '32',
      '--min-accuracy',
      '0',
      '--min-covid-recall',
      '0',
      '--beam-arg=--direct_running_mode=in_memory',
    ],
    env=env,
    capture_output=True,
    text=True,
    timeout=1800,
    check=False,
  )
  log = result.stdout + result.stderr
  assert result.returncode == 0, log[-5000:]
  assert os.listdir(output_dir / 'serving')  # the run went through to the Pusher
  assert f'password: "{log_redaction.MASK}"' in log  # TFX logged the config, masked
  database = _database_text(address)
  files = {path: path.read_bytes() for path in output_dir.rglob('*') if path.is_file()}
  assert any(path.suffix == '.md' for path in files)  # the run's report
  [summary] = [
    json.loads(content) for path, content in files.items() if path.name == 'summary.json'
  ]
  assert summary['patients']['images'] == 3 and summary['patients']['patients'] == 1  # DICOM in
  for secret in PASSWORD_FORMS + dicom_files.PATIENT_STRINGS:
    assert secret not in log
    assert secret not in database
    assert [path for path, content in files.items() if secret.encode() in content] == []
