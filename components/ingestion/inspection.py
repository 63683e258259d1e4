"""Reads one candidate file once: content hash and validation, as a small record.

A file whose validation already made the bytes to store (DICOM: its 16-bit PNG) can have them kept
under a folder, named by the file's sha256 (`stored_uri`), for the writing stage to use instead of
converting the file again; its record then also holds their pixel summary (from the converted
pixels) and its subject elements (from the same parse), so neither the file nor the PNG is read
or decoded again for them.
"""

import dataclasses
import hashlib
from typing import Dict, Optional
import uuid

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components import image_header
from components.ingestion import discovery
from components.ingestion import image_check
from components.ingestion import subjects
from components.ingestion.discovery import FileEntry

UNREADABLE = 'unreadable'
NOT_A_REGULAR_FILE = 'not_a_regular_file'
_NEVER_READ = 'only regular files are read, so it is never opened'
KIND_FATES = {  # listed kind -> (quarantine reason, detail); these entries are never opened
  discovery.FIFO: (NOT_A_REGULAR_FILE, f'a FIFO (named pipe): {_NEVER_READ}'),
  discovery.SOCKET: (NOT_A_REGULAR_FILE, f'a socket: {_NEVER_READ}'),
  discovery.DEVICE: (NOT_A_REGULAR_FILE, f'a device file: {_NEVER_READ}'),
  discovery.BROKEN_SYMLINK: (
    'broken_symlink',
    'a symbolic link whose target is missing or cannot be reached',
  ),
  discovery.UNREADABLE_FOLDER: (
    'unreadable_folder',
    'the folder cannot be listed (give read and execute permission on '
    'it): the files inside are not ingested',
  ),
  discovery.SYMLINK_LOOP: (
    'symlink_loop',
    'a symbolic link to a folder it is inside: not followed (its files are '
    'listed through the folder itself)',
  ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Inspected:
  """A candidate after its first read: sha256 and image facts, or why it is quarantined."""

  entry: FileEntry
  sha256: str = ''
  info: Optional[image_check.ImageInfo] = None
  reason: str = ''  # quarantine reason; '' for a valid image
  detail: str = ''
  subject: subjects.Subject = subjects.Subject()  # a DICOM's; the metadata CSV's are added later
  # The stored pixels' summary when the check made the bytes to store (DICOM), else None: the
  # writing stage computes it from the bytes it stores.
  pixels: Optional[image_check.PixelSummary] = None


def read_bytes(uri: str) -> bytes:
  with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    return f.read()


def stored_uri(folder: str, sha256: str) -> str:
  """Where inspect_file keeps the bytes to store that the check made, under `folder`."""
  return FileSystems.join(folder, sha256)


def _keep(folder: str, sha256: str, stored: bytes) -> None:
  """Writes `stored` to stored_uri: to a name of its own, then renamed, so that two attempts, or
  two copies of one file, never leave a partial file."""
  uri = stored_uri(folder, sha256)
  temporary = f'{uri}-{uuid.uuid4().hex}'
  with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    f.write(stored)
  FileSystems.rename([temporary], [uri])


_SUBGROUP_ELEMENTS = {  # Subject field -> the DICOM element it comes from
  'view_position': 'ViewPosition',
  'sex': 'PatientSex',
  'age_band': 'PatientAge',
  'manufacturer': 'Manufacturer',
}


def _subject(elements: Dict[str, str], salt: bytes) -> subjects.Subject:
  """A DICOM's Subject from its subject elements: its PatientID hashed with `salt`, its subgroup
  elements normalized."""
  return subjects.Subject(
    patient_hash=subjects.patient_hash(elements['PatientID'], salt),
    **{f: subjects.normalized(f, elements[k]) for f, k in _SUBGROUP_ELEMENTS.items()},
  )


def inspect_file(
  entry: FileEntry, max_image_pixels: int, salt: bytes, stored_folder: Optional[str] = None
) -> Inspected:
  """One read, one sha256, one validating decode; a valid DICOM's Subject, its patient id hashed
  with `salt`, and its pixel summary. Never raises for bad input. With stored_folder, the bytes to
  store that the check made (image_check.made_by_check) are kept there (stored_uri)."""
  if entry.kind:
    reason, detail = KIND_FATES[entry.kind]
    return Inspected(entry, reason=reason, detail=detail)
  try:
    image_header.check_file_size(entry.size, max_image_pixels)
  except image_header.BadImage as bad:
    return Inspected(entry, reason=bad.reason, detail=bad.detail)
  try:
    data = read_bytes(entry.uri)
  except Exception as e:  # (permissions, I/O errors, vanished files)
    return Inspected(entry, reason=UNREADABLE, detail=f'{type(e).__name__}: {e}')
  sha256 = hashlib.sha256(data).hexdigest()
  try:
    info, converted = image_check.check(data, max_image_pixels)
  except image_header.BadImage as bad:
    return Inspected(entry, sha256=sha256, reason=bad.reason, detail=bad.detail)
  if converted is None:
    return Inspected(entry, sha256=sha256, info=info)
  if stored_folder:
    _keep(stored_folder, sha256, converted.png)
  return Inspected(
    entry,
    sha256=sha256,
    info=info,
    subject=_subject(converted.subject, salt),
    pixels=image_check.grey16_summary(converted.grey),
  )


def to_row(item: Inspected) -> list:
  """An Inspected as a flat JSON-able row (see records)."""
  info = dataclasses.astuple(item.info) if item.info else None
  subject = dataclasses.astuple(item.subject)
  pixels = dataclasses.astuple(item.pixels) if item.pixels else None
  return [
    dataclasses.astuple(item.entry),
    item.sha256,
    info,
    item.reason,
    item.detail,
    subject,
    pixels,
  ]


def from_row(row: list) -> Inspected:
  entry, sha256, info, reason, detail, subject, pixels = row
  return Inspected(
    FileEntry(*entry),
    sha256,
    image_check.ImageInfo(*info) if info else None,
    reason,
    detail,
    subjects.Subject(*subject),
    image_check.PixelSummary(*pixels) if pixels else None,
  )
