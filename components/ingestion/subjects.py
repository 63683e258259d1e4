"""Who and how an image was taken: the patient as a salted hash, and the subgroups results are
reported by (view position, sex, age band, manufacturer).

The values come from a DICOM file's own elements (components.dicom.convert returns them) or from
the metadata CSV (metadata_csv.py), normalized here. The patient id is kept only as
HMAC-SHA256(salt, id): the salt is a random secret of the output folder (load_salt), never written
into an artifact, so the hash cannot be reversed by hashing candidate ids. No other patient
element is kept: the age only as its 10-year band, never a date.
"""

import dataclasses
import hashlib
import hmac
import os
import re
import secrets
from typing import Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

UNKNOWN = 'unknown'
AGE_BAND_YEARS = 10
OLDEST_BAND = 90  # 90 and older: one band, '90+'
SALT_BYTES = 32
_AGE = re.compile(r'(\d{1,3})\s*([DWMY]?)', re.IGNORECASE)  # DICOM AS ('045Y') or years ('45')
_DAYS_PER_UNIT = {'D': 1, 'W': 7, 'M': 365.25 / 12, 'Y': 365.25, '': 365.25}
_SEX = {'M': 'M', 'MALE': 'M', 'F': 'F', 'FEMALE': 'F', 'O': 'O', 'OTHER': 'O'}


@dataclasses.dataclass(frozen=True, slots=True)
class Subject:
  """The tf.Example's optional features of one image; '' for an unknown patient."""

  patient_hash: str = ''
  view_position: str = UNKNOWN
  sex: str = UNKNOWN
  age_band: str = UNKNOWN
  manufacturer: str = UNKNOWN


FIELDS = tuple(f.name for f in dataclasses.fields(Subject))[1:]  # the subgroups


def patient_hash(patient_id: str, salt: bytes) -> str:
  """HMAC-SHA256 of the stripped id under `salt` (hex); '' for an empty id."""
  patient_id = patient_id.strip()
  if not patient_id:
    return ''
  return hmac.new(salt, patient_id.encode(), hashlib.sha256).hexdigest()


def age_band(age: str) -> str:
  """'045Y' or '45' -> '40-49'; '006M', '003W', '010D' -> '0-9'; '093Y' -> '90+'; anything else
  -> UNKNOWN."""
  match = _AGE.fullmatch(age.strip())
  if not match:
    return UNKNOWN
  years = int(int(match[1]) * _DAYS_PER_UNIT[match[2].upper()] // 365.25)
  if years >= OLDEST_BAND:
    return f'{OLDEST_BAND}+'
  low = years // AGE_BAND_YEARS * AGE_BAND_YEARS
  return f'{low}-{low + AGE_BAND_YEARS - 1}'


def normalized(field: str, value: str) -> str:
  """A Subject field's value from a raw one (a DICOM element's value or a CSV cell): view
  position upper case, sex 'M', 'F' or 'O' (or spelled out), age as its band, manufacturer with
  single spaces; UNKNOWN when empty or not understood. Not for patient_hash."""
  value = value.strip()
  if field == 'age_band':
    return age_band(value)
  if field == 'sex':
    return _SEX.get(value.upper(), UNKNOWN)
  if field == 'view_position':
    return value.upper() or UNKNOWN
  return ' '.join(value.split()) or UNKNOWN


def salt(uri: Optional[str]) -> bytes:
  """The salt of the file `uri` (load_salt), or without one a random salt for this run only."""
  return load_salt(uri) if uri else secrets.token_hex(SALT_BYTES).encode()


def load_salt(uri: str) -> bytes:
  """The salt kept in the file `uri`, created (random, owner-only) when it does not exist yet."""
  if not FileSystems.exists(uri):
    with FileSystems.create(uri) as f:
      f.write(secrets.token_hex(SALT_BYTES).encode())
    if '://' not in uri:  # a local file: its owner's only (other file systems keep their ACLs)
      os.chmod(uri, 0o600)
  with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    salt = f.read().strip()
  if not salt:
    raise ValueError(f'patient salt file {uri!r} is empty; delete it to have a new one made')
  return salt
