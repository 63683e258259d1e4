"""Where ML Metadata lives: SQLite in the output folder (default) or a MySQL/MariaDB server.

SQLite suits one machine. A MySQL server lets several machines, Airflow workers or a scheduler
share one store: `cxr run --metadata-mysql HOST[:PORT]/DATABASE` (or CXR_METADATA_MYSQL), with
the account in CXR_MYSQL_USER / CXR_MYSQL_PASSWORD so that no password lands on a command line.
MLMD creates the database and its tables on first use when the account may do so.
"""

import contextlib
import dataclasses
import os
import pathlib
import re
import sqlite3
from typing import Mapping, Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

USER_ENV = 'CXR_MYSQL_USER'
PASSWORD_ENV = 'CXR_MYSQL_PASSWORD'
DEFAULT_MYSQL_PORT = 3306
_MLMD_TABLE = 'MLMDEnv'  # MLMD's schema version table, in every store it has initialized

_ADDRESS = re.compile(r'^(?P<host>[^:/\s]+)(:(?P<port>\d+))?/(?P<database>[A-Za-z0-9_$]+)$')


@dataclasses.dataclass(frozen=True)
class MySQLAddress:
  host: str
  port: int
  database: str

  def __str__(self) -> str:
    return f'{self.host}:{self.port}/{self.database}'


def parse_mysql_address(spec: str) -> MySQLAddress:
  """'HOST[:PORT]/DATABASE' -> MySQLAddress (port 3306 by default)."""
  match = _ADDRESS.match(spec.strip())
  if not match:
    raise ValueError(
      f'Invalid MySQL metadata address {spec!r}: expected HOST[:PORT]/DATABASE, '
      'e.g. db.example.com:3306/cxr_metadata'
    )
  port = int(match.group('port') or DEFAULT_MYSQL_PORT)
  if not 0 < port < 65536:
    raise ValueError(f'Invalid port {port} in MySQL metadata address {spec!r}')
  return MySQLAddress(match.group('host'), port, match.group('database'))


def mysql_config(
  spec: str,
  env: Optional[Mapping[str, str]] = None,
) -> metadata_store_pb2.ConnectionConfig:
  """MLMD connection to the MySQL server at `spec`, with the account from `env` (os.environ)."""
  env = os.environ if env is None else env
  address = parse_mysql_address(spec)
  user = env.get(USER_ENV, '')
  if not user:
    raise ValueError(
      f'MySQL metadata store {address}: set {USER_ENV} (and {PASSWORD_ENV}) to '
      'the account to connect with'
    )
  return tfx.orchestration.metadata.mysql_metadata_connection_config(
    host=address.host,
    port=address.port,
    database=address.database,
    username=user,
    password=env.get(PASSWORD_ENV, ''),
  )


def connection_config(
  metadata_mysql: str,
  sqlite_path: str,
  env: Optional[Mapping[str, str]] = None,
) -> metadata_store_pb2.ConnectionConfig:
  """MySQL when `metadata_mysql` (HOST[:PORT]/DATABASE) is set, else SQLite at `sqlite_path`.

  The SQLite config is TFX's sqlite_metadata_connection_config without its makedirs: the output
  folder is created only once the run's arguments are checked (run_lock.hold).
  """
  if metadata_mysql:
    return mysql_config(metadata_mysql, env)
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = sqlite_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
  return config


def check_usable(config: metadata_store_pb2.ConnectionConfig, timeout_seconds: int = 10) -> None:
  """Checks a store before anything runs: logs in to a MySQL server (ConnectionError with the
  server's reason: MLMD reports only 'mysql_real_connect failed'), or checks that an existing
  SQLite file is an intact ML Metadata store (`check_sqlite_store`)."""
  if not config.HasField('mysql'):
    check_sqlite_store(config.sqlite.filename_uri)
    return
  import pymysql

  mysql = config.mysql
  try:
    pymysql.connect(
      host=mysql.host,
      port=mysql.port,
      user=mysql.user,
      password=mysql.password,
      connect_timeout=timeout_seconds,
    ).close()
  except pymysql.err.MySQLError as e:
    raise ConnectionError(f'Cannot use the metadata store {describe(config)}: {e.args[-1]}') from e


def check_sqlite_store(path: str) -> None:
  """Raises ValueError naming `path` if it exists but is not an intact ML Metadata SQLite file.

  MLMD reports a damaged file as a bare RuntimeError quoting its SQL, midway through a run, and
  opens a file whose last pages are cut off without noticing; SQLite's own quick_check (read only,
  one pass over the file) finds both, and an empty or foreign SQLite file lacks MLMD's tables.
  """
  if not os.path.exists(path):
    return  # a first run creates it
  uri = pathlib.Path(path).absolute().as_uri() + '?mode=ro'
  try:
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
      problems = [row[0] for row in db.execute('PRAGMA quick_check')]
      tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
  except sqlite3.OperationalError as e:  # locked or unreadable, not damaged
    raise ValueError(f'Cannot read the ML Metadata store {path}: {e}') from e
  except sqlite3.DatabaseError as e:  # 'file is not a database', 'database disk image is malformed'
    problems, tables = [str(e)], set()
  if problems != ['ok']:
    reason = problems[0].splitlines()[-1]
  elif _MLMD_TABLE not in tables:
    reason = 'an empty file' if os.path.getsize(path) == 0 else 'no ML Metadata tables'
  else:
    return
  raise ValueError(
    f'{path} is not a valid ML Metadata store ({reason}): restore it from a backup, '
    'or move it away to start a new store'
  )


def describe(config: metadata_store_pb2.ConnectionConfig) -> str:
  """A one-line description of a connection, without its password (for logs)."""
  if config.HasField('mysql'):
    return (
      f'MySQL {config.mysql.user}@{config.mysql.host}:{config.mysql.port}/{config.mysql.database}'
    )
  return f'SQLite {config.sqlite.filename_uri}'
