"""Ingestion of chest X-ray class folders into TFRecords of raw tf.Examples, with a report.

`ingest(...)` is the plain-Python entry point, `check(...)` its early checks, `IngestOptions` the
settings, and `components.ingestion.component.ImageFolderExampleGen` the TFX component. The names
load their module on first use (PEP 562), so that `cxr` reads `components.ingestion.options`
without importing Beam (5 s).
"""

import importlib

_EXPORTS = {
  'IngestResult': 'api',
  'check': 'api',
  'ingest': 'api',
  'IngestOptions': 'options',
}


def __getattr__(name):
  if name not in _EXPORTS:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
