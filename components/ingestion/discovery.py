"""Finds the image files of a dataset folder: spans, folder layouts, class folders, files to skip.

Layouts (each span-N folder may hold any of them):
- seed:        ROOT/{Train,Test}/<class>/...   (eval is carved out of Train/)
- single root: ROOT/<class>/...                (train/eval/test by ratios)
- Kaggle:      ROOT/<class>/{images,masks}/... plus metadata files; masks are skipped.
A root holding a single other folder (e.g. an unzipped 'COVID-19_Radiography_Dataset/') is entered.
Class folders match components.labels.CLASS_NAMES ignoring case and separators.
Listing uses Beam FileSystems, so the same code reads local disks and gs://.
"""
import dataclasses
import hashlib
import os
import posixpath
import re
from typing import Dict, List, Optional, Sequence, Tuple

from apache_beam.io.filesystems import FileSystems

from components import labels
from components.ingestion.options import IngestOptions

IMAGE_EXTENSIONS = frozenset({'.png', '.jpg', '.jpeg', '.jpe', '.jfif', '.bmp', '.dib', '.tif', '.tiff', '.gif',
                              '.webp', '.pbm', '.pgm', '.ppm', '.pnm'})
SYSTEM_NAMES = frozenset({'thumbs.db', 'ehthumbs.db', 'desktop.ini', '__macosx', '$recycle.bin',
                          'system volume information'})
MASK_FOLDERS = frozenset({'mask', 'masks'})
SPLIT_FOLDER_ROLES = {'train': 'train', 'test': 'test'}  # lower-case folder name -> role
_SPAN_RE = re.compile(r'span-(\d+)', re.IGNORECASE)

# Reasons for files that are listed but are not image candidates (manifest status 'ignored').
HIDDEN = 'hidden_or_system_file'
NOT_AN_IMAGE_FILE = 'not_an_image_file'
MASK = 'mask'
UNKNOWN_CLASS = 'unknown_class'
OUTSIDE_CLASS_FOLDERS = 'outside_class_folders'
OUTSIDE_SPLIT_FOLDERS = 'outside_split_folders'


@dataclasses.dataclass(frozen=True, slots=True)
class ListedFile:
  path: str  # relative to input_base, '/'-separated
  size: int
  mtime: float


@dataclasses.dataclass(frozen=True, slots=True)
class FileEntry:
  """One file found under input_base: an image candidate, or a skipped file with its reason."""
  path: str                 # relative to input_base, '/'-separated
  uri: str                  # what FileSystems.open reads
  size: int
  source: str               # 'Train'/'Test', 'span-N', or the name of the folder holding the classes
  label: int = -1           # class index; -1 when skipped
  role: str = ''            # 'train' (Train/: train+eval), 'test' (Test/), 'any' (all splits)
  group: str = ''           # group_regex match of the file name
  ignored_reason: str = ''  # non-empty: not an image candidate

  @property
  def is_candidate(self) -> bool:
    return not self.ignored_reason


@dataclasses.dataclass(frozen=True)
class Discovery:
  entries: List[FileEntry]  # sorted by path
  spans: Tuple[int, ...]    # selected span numbers; () without span folders
  unknown_folders: Tuple[str, ...]

  @property
  def span(self) -> int:
    """The latest span ingested (0 without span folders): the Examples artifact's `span`."""
    return max(self.spans, default=0)

  @property
  def candidates(self) -> List[FileEntry]:
    return [e for e in self.entries if e.is_candidate]


def _absolute(input_base: str) -> str:
  return input_base if '://' in input_base else os.path.abspath(input_base)


def _is_hidden(name: str) -> bool:
  return name.startswith('.') or name.lower() in SYSTEM_NAMES


def list_files(input_base: str) -> List[ListedFile]:
  """Every file under input_base (hidden ones included) with size and modification time."""
  base = _absolute(input_base).rstrip('/')
  if not FileSystems.exists(base):
    raise FileNotFoundError(f'input_base {input_base!r} does not exist')
  metadata = FileSystems.match([FileSystems.join(base, '**')])[0].metadata_list
  files = [ListedFile(m.path[len(base):].replace(os.sep, '/').lstrip('/'), m.size_in_bytes,
                      m.last_updated_in_seconds) for m in metadata]
  return sorted(files, key=lambda f: f.path)


def _select_spans(input_base: str, top_dirs: Sequence[str], span: str) -> List[Tuple[int, str]]:
  """(number, folder) of the selected span-N folders; [] when there are none and span allows it."""
  found = sorted((int(m.group(1)), d) for d in top_dirs if (m := _SPAN_RE.fullmatch(d)))
  if not found:
    if span in ('latest', 'all'):
      return []
    raise ValueError(f'span={span!r} was requested but {input_base} has no span-N folders')
  if span == 'latest':
    return [s for s in found if s[0] == found[-1][0]]
  if span == 'all':
    return found
  low, _, high = span.partition('-')
  selected = [s for s in found if int(low) <= s[0] <= int(high or low)]
  if not selected:
    raise ValueError(f'span={span!r} matches no span folder under {input_base}; '
                     f'found spans {sorted({n for n, _ in found})}')
  return selected


def selected_files(input_base: str, span: str = 'latest') -> Tuple[List[Tuple[int, str]], List[ListedFile]]:
  """The selected span folders and the files under them (all files when there are no spans)."""
  files = list_files(input_base)
  top_dirs = {f.path.split('/', 1)[0] for f in files if '/' in f.path}
  spans = _select_spans(input_base, sorted(top_dirs), span)
  if spans:
    folders = {folder for _, folder in spans}
    files = [f for f in files if f.path.split('/', 1)[0] in folders]
  return spans, files


def fingerprint(input_base: str, span: str = 'latest') -> str:
  """Cheap cache key of the input: sha256 over the path, size and mtime of every selected file.

  The pipeline passes it to ImageFolderExampleGen as `input_fingerprint`, so TFX caching re-runs
  ingestion exactly when a file of the selected spans is added, removed or changed.
  """
  spans, files = selected_files(input_base, span)
  digest = hashlib.sha256(f'spans={[n for n, _ in spans]}\n'.encode())
  for f in files:
    digest.update(f'{f.path}\t{f.size}\t{f.mtime!r}\n'.encode())
  return digest.hexdigest()


class _Classifier:
  """Turns the files of one root into FileEntry rows, following the root's layout."""

  def __init__(self, base: str, options: IngestOptions):
    self._base = base
    self._group_re = re.compile(options.group_regex) if options.group_regex else None
    self.unknown_folders = set()

  def _entry(self, listed: ListedFile, source: str, reason: str = '', label: int = -1, role: str = '') -> FileEntry:
    group = ''
    if self._group_re and not reason and (match := self._group_re.search(posixpath.basename(listed.path))):
      group = match.group(1) if match.re.groups else match.group(0)
    return FileEntry(path=listed.path, uri=FileSystems.join(self._base, *listed.path.split('/')),
                     size=listed.size, source=source, label=label, role=role, group=group, ignored_reason=reason)

  def _class_file(self, prefix: str, parts: Tuple[str, ...], listed: ListedFile, role: str, source: str):
    """A file at `parts` below the folder `prefix` that holds class folders."""
    if any(_is_hidden(p) for p in parts):
      return self._entry(listed, source, HIDDEN)
    if len(parts) == 1:
      return self._entry(listed, source, OUTSIDE_CLASS_FOLDERS)
    label = labels.class_index(parts[0])
    if label is None:
      self.unknown_folders.add(posixpath.join(prefix, parts[0]))
      return self._entry(listed, source, UNKNOWN_CLASS)
    if any(p.lower() in MASK_FOLDERS for p in parts[1:-1]):
      return self._entry(listed, source, MASK)
    if posixpath.splitext(parts[-1])[1].lower() not in IMAGE_EXTENSIONS:
      return self._entry(listed, source, NOT_AN_IMAGE_FILE)
    return self._entry(listed, source, label=label, role=role)

  def classify(self, prefix: str, files: List[Tuple[Tuple[str, ...], ListedFile]], source: Optional[str]):
    """Entries of `files` (parts relative to `prefix`); source None: named after the folder."""
    top_dirs = sorted({parts[0] for parts, _ in files if len(parts) > 1 and not _is_hidden(parts[0])})
    split_dirs = [d for d in top_dirs if d.lower() in SPLIT_FOLDER_ROLES]
    class_dirs = [d for d in top_dirs if labels.class_index(d) is not None]
    where = posixpath.join(self._base, prefix) if prefix else self._base
    own_name = source or posixpath.basename(where)
    if split_dirs and class_dirs:
      raise ValueError(f'{where} mixes split folders {split_dirs} and class folders {class_dirs}; '
                       f'put class folders either at the top or inside Train/ and Test/')
    if split_dirs:
      entries = []
      for parts, listed in files:
        if len(parts) > 1 and parts[0] in split_dirs:
          entries.append(self._class_file(posixpath.join(prefix, parts[0]), parts[1:], listed,
                                          SPLIT_FOLDER_ROLES[parts[0].lower()], source or parts[0]))
        else:
          entries.append(self._entry(listed, own_name, HIDDEN if any(map(_is_hidden, parts)) else
                                     OUTSIDE_SPLIT_FOLDERS))
      return entries
    if class_dirs:
      return [self._class_file(prefix, parts, listed, 'any', own_name) for parts, listed in files]
    if len(top_dirs) == 1:
      inner = [(parts[1:], listed) for parts, listed in files if len(parts) > 1 and parts[0] == top_dirs[0]]
      outer = [self._entry(listed, own_name, HIDDEN if any(map(_is_hidden, parts)) else OUTSIDE_CLASS_FOLDERS)
               for parts, listed in files if not (len(parts) > 1 and parts[0] == top_dirs[0])]
      return outer + self.classify(posixpath.join(prefix, top_dirs[0]), inner, source)
    raise ValueError(f'No class folders under {where}: expected folders named {list(labels.CLASS_NAMES)} '
                     f'(case and separators ignored), optionally inside Train/ and Test/ or span-N/ folders; '
                     f'found folders {top_dirs}')


def discover(input_base: str, options: IngestOptions = IngestOptions()) -> Discovery:
  """Lists and classifies every file of the selected spans; raises on unknown class folders
  unless options.unknown_classes == 'ignore'."""
  spans, files = selected_files(input_base, options.span)
  classifier = _Classifier(_absolute(input_base).rstrip('/'), options)
  roots = [(folder, f'span-{number}') for number, folder in spans] or [('', None)]
  entries = []
  for folder, source in roots:
    under = [(tuple(f.path.split('/')[1 if folder else 0:]), f) for f in files
             if not folder or f.path.split('/', 1)[0] == folder]
    entries.extend(classifier.classify(folder, under, source))
  unknown = tuple(sorted(classifier.unknown_folders))
  if unknown and options.unknown_classes == 'error':
    raise ValueError(f'Unknown class folder(s) {list(unknown)} under {input_base}: expected '
                     f'{list(labels.CLASS_NAMES)} (case and separators ignored). Rename them, or pass '
                     f"unknown_classes='ignore' to skip them (they are then listed in the report).")
  return Discovery(entries=sorted(entries, key=lambda e: e.path), spans=tuple(n for n, _ in spans),
                   unknown_folders=unknown)
