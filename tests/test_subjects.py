"""The subgroup values as ingestion keeps them, and the patient salt file."""

import hashlib
import hmac

import pytest

from components.ingestion import subjects


@pytest.mark.parametrize(
  'age, band',
  [
    ('045Y', '40-49'),
    ('45', '40-49'),
    ('040Y', '40-49'),
    ('039Y', '30-39'),
    ('000Y', '0-9'),
    ('006M', '0-9'),
    ('120M', '10-19'),  # 10 years in months
    ('003W', '0-9'),
    ('010D', '0-9'),
    ('089Y', '80-89'),
    ('090Y', '90+'),
    ('104', '90+'),
    ('', 'unknown'),
    ('abc', 'unknown'),
    ('45.5', 'unknown'),
    ('-3', 'unknown'),
  ],
)
def test_age_band(age, band):
  assert subjects.age_band(age) == band


def test_values_are_normalized_and_unknown_when_missing():
  assert subjects.normalized('view_position', ' pa ') == 'PA'
  assert [subjects.normalized('sex', v) for v in ('f', 'Female', 'M', 'other', 'x', '')] == [
    'F',
    'F',
    'M',
    'O',
    'unknown',
    'unknown',
  ]
  assert subjects.normalized('manufacturer', ' Acme   Imaging ') == 'Acme Imaging'
  assert subjects.normalized('manufacturer', '') == 'unknown'


def test_the_patient_hash_is_an_hmac_under_the_salt_file(tmp_path):
  salt_file = tmp_path / 'patient_salt'
  salt = subjects.load_salt(str(salt_file))
  assert salt_file.stat().st_mode & 0o777 == 0o600 and len(salt) == 2 * subjects.SALT_BYTES
  assert subjects.load_salt(str(salt_file)) == salt  # made once, then kept
  assert subjects.patient_hash(' PID-1 ', salt) == (
    hmac.new(salt, b'PID-1', hashlib.sha256).hexdigest()
  )
  assert subjects.patient_hash('PID-1', b'another salt') != subjects.patient_hash('PID-1', salt)
  assert subjects.patient_hash('  ', salt) == ''
  salt_file.write_text('')
  with pytest.raises(ValueError, match='is empty; delete it to have a new one made'):
    subjects.load_salt(str(salt_file))
