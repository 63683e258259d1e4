"""A cheap fingerprint of the selected input files, so TFX caching re-runs ingestion exactly when they change."""
import hashlib

from components.ingestion.discovery import selected_files


def fingerprint(input_base: str, span: str = 'latest') -> str:
  """sha256 over the relative path, size and modification time of every file of the selected spans."""
  spans, files = selected_files(input_base, span)
  digest = hashlib.sha256(f'spans={[n for n, _ in spans]}\n'.encode())
  for f in files:
    digest.update(f'{f.path}\t{f.size}\t{f.mtime!r}\n'.encode())
  return digest.hexdigest()
