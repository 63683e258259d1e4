"""Keeps a secret out of every log record: the MySQL password of the metadata store.

TFX's LocalDagRunner and BeamDagRunner log the whole deployment config at INFO, password
included (`Using deployment config` / `Using connection config` in
tfx/orchestration/local/local_dag_runner.py and beam/beam_dag_runner.py), and they read the
password from that same config, so it cannot be left out of it. `redacting` installs a log
record factory (Python's hook that every logger, absl's included, creates its records with)
that masks the secret in each record's message and traceback, as is and in the escaped forms
it is printed in (a repr, a protobuf text-format string).
"""

import contextlib
import logging
from typing import Iterator, Set

from google.protobuf import text_encoding

MASK = '********'


def printed_forms(secret: str) -> Set[str]:
  """`secret` as is, inside its repr, and as protobuf text format prints it (str(message) escapes
  the UTF-8 bytes)."""
  return {
    secret,
    repr(secret)[1:-1],
    text_encoding.CEscape(secret, as_utf8=True),
    text_encoding.CEscape(secret.encode('utf-8'), as_utf8=False),
  }


def _masked(text: str, forms) -> str:
  for form in forms:
    text = text.replace(form, MASK)
  return text


@contextlib.contextmanager
def redacting(secret: str) -> Iterator[None]:
  """Masks `secret` in every log record created in the `with` block (no-op if it is empty)."""
  if not secret:
    yield
    return
  forms = sorted(printed_forms(secret), key=len, reverse=True)
  make_record = logging.getLogRecordFactory()

  def make_masked_record(*args, **kwargs) -> logging.LogRecord:
    record = make_record(*args, **kwargs)
    try:
      message = record.getMessage()
    except Exception:
      return record  # a broken format string: the handler reports it as usual
    if any(form in message for form in forms):
      record.msg, record.args = _masked(message, forms), None
    if record.exc_info:
      record.exc_text = _masked(logging.Formatter().formatException(record.exc_info), forms)
    return record

  logging.setLogRecordFactory(make_masked_record)
  try:
    yield
  finally:
    logging.setLogRecordFactory(make_record)
