"""Ingestion of chest X-ray class folders into TFRecords of raw tf.Examples, with a report.

`ingest(...)` is the plain-Python entry point, `fingerprint(...)` the cache key of the input, and
`components.ingestion.component.ImageFolderExampleGen` the TFX component.
"""
from components.ingestion.api import IngestResult, ingest
from components.ingestion.discovery import fingerprint
from components.ingestion.options import IngestOptions, parse_split_ratios
