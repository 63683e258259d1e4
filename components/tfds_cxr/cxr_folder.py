"""`cxr_folder`: a TFDS dataset of chest X-ray class folders, split exactly like
ImageFolderExampleGen.

It reuses the ingestion's discovery, validation, deduplication and split assignment, so a folder
gives the same images in the same train/eval/test splits through TFDS as through the pipeline:

  import components.tfds_cxr  # registers the builder
  ds = tfds.load('cxr_folder', split='train', data_dir=..., download_and_prepare_kwargs={
      'download_config': tfds.download.DownloadConfig(manual_dir='/path/to/dataset')})

Options (span, ratios, group_regex, ...) go through
`CxrFolderConfig(name=..., options=IngestOptions(...))`.
"""

import dataclasses
import hashlib
import logging
import tempfile

import tensorflow_datasets as tfds

from components import labels
from components.ingestion import image_check
from components.ingestion import inspection
from components.ingestion import manifest
from components.ingestion import metadata_csv
from components.ingestion import splitting
from components.ingestion import subjects
from components.ingestion.discovery import discover
from components.ingestion.file_table import FileTable
from components.ingestion.options import IngestOptions
from components.ingestion.options import SPLITS

_LOG_EVERY = 500


def _inspect(candidates, max_image_pixels: int, salt: bytes):
  for i, entry in enumerate(candidates, 1):
    yield inspection.inspect_file(entry, max_image_pixels, salt)
    if i % _LOG_EVERY == 0:
      logging.info('Inspected %d files', i)


@dataclasses.dataclass(eq=False)
class CxrFolderConfig(tfds.core.BuilderConfig):
  options: IngestOptions = IngestOptions()


class CxrFolder(tfds.core.GeneratorBasedBuilder):
  """Chest X-ray class folders (COVID, NORMAL, VIRAL PNEUMONIA) read from `manual_dir`."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = [
    CxrFolderConfig(name='default', description='Default ingestion options (IngestOptions).')
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Point `manual_dir` at a folder of class folders named COVID, NORMAL and VIRAL PNEUMONIA (case and
  separators ignored): Train/ and Test/ holding class folders, class folders at the top, the Kaggle
  COVID-19_Radiography_Dataset layout, or span-N/ folders of any of these; source folders may sit
  right above the class folders.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      description=(
        'Chest X-rays labelled COVID, NORMAL or VIRAL PNEUMONIA, validated and deduplicated.'
      ),
      features=tfds.features.FeaturesDict(
        {
          'image': tfds.features.Image(shape=(None, None, 1)),
          'label': tfds.features.ClassLabel(names=list(labels.CLASS_NAMES)),
          'path': tfds.features.Text(),
          'sha256': tfds.features.Text(),
          'source': tfds.features.Text(),
        }
      ),
      supervised_keys=('image', 'label'),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    options = self.builder_config.options
    input_base = str(dl_manager.manual_dir)
    found = discover(input_base, options)
    salt = subjects.salt(options.patient_salt_file)  # the ingestion's, so its patient splits
    with FileTable() as table, tempfile.TemporaryDirectory() as staging:
      table.add_ignored(e for e in found.entries() if not e.is_candidate)
      table.add_inspected(_inspect(found.candidates(), options.max_image_pixels, salt))
      csv_counts = None
      if options.metadata_csv:
        staged = metadata_csv.stage(options.metadata_csv, staging, salt)
        csv_counts = dict(path=options.metadata_csv, **metadata_csv.apply(table.db, staged))
      splitting.assign(table, options)
      logging.info(
        manifest.format_summary(
          manifest.summarize(
            manifest.rows(table),
            input_base,
            found.spans,
            options.max_bad_fraction,
            found.unknown_folders,
            csv_counts,
            options.allow_confounded_sources,
          )
        )
      )
      ingested = {split: list(table.ingested(split)) for split in SPLITS}
    return {split: self._generate_examples(items) for split, items in ingested.items()}

  def _generate_examples(self, items):
    max_pixels = self.builder_config.options.max_image_pixels
    for item in items:
      data = inspection.read_bytes(item.entry.uri)
      if hashlib.sha256(data).hexdigest() != item.sha256:
        raise RuntimeError(
          f'{item.entry.uri} changed while the dataset was being prepared; prepare it again'
        )
      yield (
        item.entry.path,
        {
          'image': image_check.stored_bytes(data, item.info, max_pixels),
          'label': item.entry.label,
          'path': item.entry.path,
          'sha256': item.sha256,
          'source': item.entry.source,
        },
      )
