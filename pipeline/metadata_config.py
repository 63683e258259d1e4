"""Where ML Metadata lives: SQLite in the output folder (default) or a MySQL/MariaDB server.

SQLite suits one machine. A MySQL server lets several machines, Airflow workers or a scheduler
share one store: `cxr run --metadata-mysql HOST[:PORT]/DATABASE` (or CXR_METADATA_MYSQL), with
the account in CXR_MYSQL_USER / CXR_MYSQL_PASSWORD so that no password lands on a command line.
MLMD creates the database and its tables on first use when the account may do so.
"""
import dataclasses
import os
import re
from typing import Mapping, Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

USER_ENV = 'CXR_MYSQL_USER'
PASSWORD_ENV = 'CXR_MYSQL_PASSWORD'
DEFAULT_MYSQL_PORT = 3306

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
    raise ValueError(f'Invalid MySQL metadata address {spec!r}: expected HOST[:PORT]/DATABASE, '
                     'e.g. db.example.com:3306/cxr_metadata')
  port = int(match.group('port') or DEFAULT_MYSQL_PORT)
  if not 0 < port < 65536:
    raise ValueError(f'Invalid port {port} in MySQL metadata address {spec!r}')
  return MySQLAddress(match.group('host'), port, match.group('database'))


def mysql_config(spec: str, env: Optional[Mapping[str, str]] = None,
                 ) -> metadata_store_pb2.ConnectionConfig:
  """MLMD connection to the MySQL server at `spec`, with the account from `env` (os.environ)."""
  env = os.environ if env is None else env
  address = parse_mysql_address(spec)
  user = env.get(USER_ENV, '')
  if not user:
    raise ValueError(f'MySQL metadata store {address}: set {USER_ENV} (and {PASSWORD_ENV}) to '
                     'the account to connect with')
  return tfx.orchestration.metadata.mysql_metadata_connection_config(
      host=address.host, port=address.port, database=address.database, username=user,
      password=env.get(PASSWORD_ENV, ''))


def connection_config(metadata_mysql: str, sqlite_path: str,
                      env: Optional[Mapping[str, str]] = None,
                      ) -> metadata_store_pb2.ConnectionConfig:
  """MySQL when `metadata_mysql` (HOST[:PORT]/DATABASE) is set, else SQLite at `sqlite_path`."""
  if metadata_mysql:
    return mysql_config(metadata_mysql, env)
  return tfx.orchestration.metadata.sqlite_metadata_connection_config(sqlite_path)


def check_reachable(config: metadata_store_pb2.ConnectionConfig, timeout_seconds: int = 10) -> None:
  """Logs in to a MySQL store's server; raises ConnectionError with the server's reason if not.

  MLMD itself reports only 'mysql_real_connect failed' without the reason. SQLite: no-op.
  """
  if not config.HasField('mysql'):
    return
  import pymysql  # pylint: disable=g-import-not-at-top
  mysql = config.mysql
  try:
    pymysql.connect(host=mysql.host, port=mysql.port, user=mysql.user, password=mysql.password,
                    connect_timeout=timeout_seconds).close()
  except pymysql.err.MySQLError as e:
    raise ConnectionError(f'Cannot use the metadata store {describe(config)}: {e.args[-1]}') from e


def describe(config: metadata_store_pb2.ConnectionConfig) -> str:
  """A one-line description of a connection, without its password (for logs)."""
  if config.HasField('mysql'):
    return (f'MySQL {config.mysql.user}@{config.mysql.host}:{config.mysql.port}/'
            f'{config.mysql.database}')
  return f'SQLite {config.sqlite.filename_uri}'
