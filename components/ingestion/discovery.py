"""Finds the image files of a dataset folder: spans, folder layouts, class folders, files to skip.

Layouts (each span-N folder may hold any of them):
- seed:        ROOT/{Train,Test}/<class>/...   (eval is carved out of Train/)
- single root: ROOT/<class>/...                (train/eval/test by ratios)
- Kaggle:      ROOT/<class>/{images,masks}/... plus metadata files; masks are skipped.
- sources:     ROOT/<source>/<class>/..., ROOT/{Train,Test}/<source>/<class>/...: one level of
               source folders (hospitals, repositories) right above the class folders.
A root holding a single other folder (e.g. an unzipped 'COVID-19_Radiography_Dataset/') is entered.
Class folders match components.labels.CLASS_NAMES ignoring case and separators; a folder named like
a class is a class, never a source. A file's source is its source folder, else its span-N folder,
else its Train/ or Test/ folder, else the folder holding the class folders.
Image files are named by their extension; a file with another extension or none is an image
(DICOM) when it has the DICOM magic (b'DICM' at byte 128), the only file contents read here.
Remote folders (gs://, ...) are listed with Beam FileSystems; local ones by `_walk_local`, which
also reports what Beam's local lister drops or cannot tell from a file (see there).
"""

import dataclasses
import os
import posixpath
import re
import stat
from typing import Dict, Iterable, Iterator, List, Optional, Set, Tuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components import dicom
from components import labels
from components.ingestion.options import IngestOptions

IMAGE_EXTENSIONS = frozenset(
  {
    '.png',
    '.jpg',
    '.jpeg',
    '.jpe',
    '.jfif',
    '.bmp',
    '.dib',
    '.tif',
    '.tiff',
    '.gif',
    '.webp',
    '.pbm',
    '.pgm',
    '.ppm',
    '.pnm',
    '.dcm',
  }
)
SYSTEM_NAMES = frozenset(
  {
    'thumbs.db',
    'ehthumbs.db',
    'desktop.ini',
    '__macosx',
    '$recycle.bin',
    'system volume information',
    'lost+found',
  }
)
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

# Kinds of listed entries that are not regular files: never opened (inspection quarantines them).
FIFO = 'fifo'
SOCKET = 'socket'
DEVICE = 'device'
BROKEN_SYMLINK = 'broken_symlink'
UNREADABLE_FOLDER = 'unreadable_folder'  # its path ends with '/'
SYMLINK_LOOP = 'symlink_loop'  # a link to a folder it is inside; its path ends with '/'


@dataclasses.dataclass(frozen=True, slots=True)
class ListedFile:
  path: str  # relative to input_base, '/'-separated
  size: int
  mtime: float
  kind: str = ''  # '' for a regular file, else one of the kinds above


@dataclasses.dataclass(frozen=True, slots=True)
class FileEntry:
  """One file found under input_base: an image candidate, or a skipped file with its reason."""

  path: str  # relative to input_base, '/'-separated
  uri: str  # what FileSystems.open reads
  size: int
  source: str  # source folder, 'span-N', 'Train'/'Test', or the folder holding the classes
  label: int = -1  # class index; -1 when skipped
  role: str = ''  # 'train' (Train/: train+eval), 'test' (Test/), 'any' (all splits)
  group: str = ''  # group_regex match of the file name
  ignored_reason: str = ''  # non-empty: not an image candidate
  kind: str = ''  # ListedFile.kind

  @property
  def is_candidate(self) -> bool:
    return not self.ignored_reason


def _absolute(input_base: str) -> str:
  return input_base if '://' in input_base else os.path.abspath(input_base)


def named_like_dicom(path: str) -> bool:
  """Whether an image candidate is DICOM by its name: '.dcm', or no image extension (it was taken
  for an image by its DICOM magic)."""
  extension = posixpath.splitext(path)[1].lower()
  return extension == '.dcm' or extension not in IMAGE_EXTENSIONS


def _is_hidden(name: str) -> bool:
  return name.startswith('.') or name.lower() in SYSTEM_NAMES


def _is_image_file(name: str, listed: ListedFile, uri: str) -> bool:
  """An image extension, or the DICOM magic (DICOM files are often named by UIDs or have no
  extension). Only regular files are read (a FIFO would block); one that cannot be read is not
  taken for an image."""
  if posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
    return True
  if listed.kind:
    return False
  try:
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
      return dicom.is_dicom(f.read(dicom.MAGIC_OFFSET + len(dicom.MAGIC)))
  except Exception:  # (permissions, I/O errors, a file that vanished)
    return False


def _special_kind(mode: int) -> str:
  if stat.S_ISFIFO(mode):
    return FIFO
  return SOCKET if stat.S_ISSOCK(mode) else DEVICE


def _walk_local(base: str) -> Iterator[ListedFile]:
  """Every entry under the local folder `base`, one folder listing at a time.

  Hand-written because Beam's local lister (os.walk + getsize) silently drops unreadable folders,
  broken symbolic links and linked folders, and lists FIFOs, sockets and devices as files (reading
  a FIFO blocks). Here those are listed with their kind; linked folders are followed, except a
  link back into a folder it is inside (a loop).
  """
  root = os.stat(base)
  pending = [('', ((root.st_dev, root.st_ino),))]  # (folder under base, ids of it and its parents)
  while pending:
    folder, ancestors = pending.pop()
    try:
      with os.scandir(os.path.join(base, folder)) as listing:
        entries = list(listing)  # one folder at a time, as os.walk holds it
    except OSError:
      if not folder:
        raise
      yield ListedFile(folder, 0, 0.0, UNREADABLE_FOLDER)
      continue
    for entry in entries:
      path = folder + entry.name
      try:
        info = entry.stat()  # follows links
      except OSError:
        if entry.is_symlink():  # dangling, looping or forbidden target
          yield ListedFile(path, 0, entry.stat(follow_symlinks=False).st_mtime, BROKEN_SYMLINK)
        continue  # else it vanished since the folder was listed
      if stat.S_ISDIR(info.st_mode):
        identity = (info.st_dev, info.st_ino)
        if identity in ancestors:
          yield ListedFile(path + '/', 0, info.st_mtime, SYMLINK_LOOP)
        else:
          pending.append((path + '/', ancestors + (identity,)))
      elif stat.S_ISREG(info.st_mode):
        yield ListedFile(path, info.st_size, info.st_mtime)
      else:
        yield ListedFile(path, 0, info.st_mtime, _special_kind(info.st_mode))


def iter_files(input_base: str) -> Iterator[ListedFile]:
  """Every file under input_base (hidden ones included) with size and modification time, one at a
  time; locally also the entries that are not regular files (see ListedFile.kind)."""
  base = _absolute(input_base).rstrip('/')
  if not FileSystems.exists(base):
    raise FileNotFoundError(f'input_base {input_base!r} does not exist')
  if '://' not in base:
    try:
      yield from _walk_local(base)
    except OSError as e:  # only input_base itself: _walk_local reports the folders below
      raise ValueError(
        f'Cannot list input_base {input_base!r}: {e.strerror}; it must be a folder you may read'
      ) from None
    return
  # FileSystems.match would collect the whole listing; the file system's own lister streams it.
  for m in FileSystems.get_filesystem(base)._list(base + '/'):
    yield ListedFile(
      m.path[len(base) :].replace(os.sep, '/').lstrip('/'),
      m.size_in_bytes,
      m.last_updated_in_seconds,
    )


def _select_spans(input_base: str, top_dirs: Iterable[str], span: str) -> List[Tuple[int, str]]:
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
    raise ValueError(
      f'span={span!r} matches no span folder under {input_base}; '
      f'found spans {sorted({n for n, _ in found})}'
    )
  return selected


def check_spans(input_base: str, span: str) -> None:
  """Raises the ValueError `discover` raises when `span` selects no span folder, from one listing
  of input_base."""
  _select_spans(
    input_base, {f.path.split('/', 1)[0] for f in iter_files(input_base) if '/' in f.path}, span
  )


@dataclasses.dataclass(frozen=True)
class _Layout:
  """How the files under one root (the input, or a span folder) are classified."""

  folder: str  # the span folder; '' without spans
  source: Optional[str]  # 'span-N'; None: named after the folder holding the files
  wrappers: Tuple[str, ...]  # single folders entered on the way down to the class folders
  split_dirs: Tuple[str, ...]  # the Train/ and Test/ folders; () when the classes are at the top
  sources: Dict[str, Tuple[str, ...]]  # split folder ('' without) -> its source folders, if any


def _subfolders(folders: Set[Tuple[str, ...]], prefix: Tuple[str, ...]) -> List[str]:
  """The names of the visible folders directly under `prefix` among `folders` (tuples of parts)."""
  return sorted(
    {
      f[len(prefix)]
      for f in folders
      if len(f) > len(prefix) and f[: len(prefix)] == prefix and not _is_hidden(f[len(prefix)])
    }
  )


def _class_dirs(folders: Set[Tuple[str, ...]], level: Tuple[str, ...]) -> List[str]:
  return [d for d in _subfolders(folders, level) if labels.class_index(d) is not None]


def _source_dirs(where: str, level: Tuple[str, ...], folders: Set[Tuple[str, ...]]) -> List[str]:
  """The source folders directly under `level`: folders not named like a class that hold class
  folders. Raises when class folders sit beside them (a mix of levels)."""
  n = len(level)
  sources = sorted(
    {
      f[n]
      for f in folders  # one pass: a level may hold many folders
      if len(f) > n + 1
      and f[:n] == level
      and not (_is_hidden(f[n]) or _is_hidden(f[n + 1]))
      and labels.class_index(f[n]) is None
      and labels.class_index(f[n + 1]) is not None
    }
  )
  class_dirs = _class_dirs(folders, level)
  if sources and class_dirs:
    raise ValueError(
      f'{where} mixes class folders {class_dirs} and source folders {sources} (folders holding '
      f'class folders); put every class folder inside a source folder, or none'
    )
  return sources


def _layout(
  where_base: str, folder: str, source: Optional[str], folders: Set[Tuple[str, ...]]
) -> _Layout:
  """The layout of the root `folder`, from the folders holding files; raises on an unusable one."""
  prefix = tuple(folder.split('/')) if folder else ()
  wrappers = []
  while True:
    top_dirs = _subfolders(folders, prefix)
    split_dirs = [d for d in top_dirs if d.lower() in SPLIT_FOLDER_ROLES]
    class_dirs = _class_dirs(folders, prefix)
    where = posixpath.join(where_base, *prefix)
    if split_dirs and class_dirs:
      raise ValueError(
        f'{where} mixes split folders {split_dirs} and class folders {class_dirs}; '
        f'put class folders either at the top or inside Train/ and Test/'
      )
    if split_dirs:
      sources = {d: tuple(_source_dirs(f'{where}/{d}', prefix + (d,), folders)) for d in split_dirs}
      return _Layout(folder, source, tuple(wrappers), tuple(split_dirs), sources)
    source_dirs = _source_dirs(where, prefix, folders)
    if class_dirs or (source_dirs and len(top_dirs) > 1):
      return _Layout(folder, source, tuple(wrappers), (), {'': tuple(source_dirs)})
    if len(top_dirs) != 1:
      raise ValueError(
        f'No class folders under {where}: expected folders named {list(labels.CLASS_NAMES)} '
        f'(case and separators ignored), optionally inside source folders, Train/ and Test/ or '
        f'span-N/ folders; found folders {top_dirs}'
      )
    wrappers.append(top_dirs[0])
    prefix += (top_dirs[0],)


def _unknown_folders(layout: _Layout, visible: Set[Tuple[str, ...]]) -> List[str]:
  """Folders beside the class folders, or beside the source folders, that are not a known class
  (nor a source folder) and hold a visible file."""
  root = (tuple(layout.folder.split('/')) if layout.folder else ()) + layout.wrappers
  unknown = []
  for split_dir, sources in layout.sources.items():
    level = root + ((split_dir,) if split_dir else ())
    if sources:  # beside the source folders: no class folder (_source_dirs raises on a mix)
      unknown += [level + (d,) for d in _subfolders(visible, level) if d not in sources]
    for class_level in [level + (s,) for s in sources] or [level]:
      unknown += [
        class_level + (d,)
        for d in _subfolders(visible, class_level)
        if labels.class_index(d) is None
      ]
  return ['/'.join(parts) for parts in unknown]


@dataclasses.dataclass(frozen=True)
class Discovery:
  """The layout of a dataset folder; `entries()` lists and classifies its files, one at a time."""

  input_base: str
  spans: Tuple[int, ...]  # selected span numbers; () without span folders
  unknown_folders: Tuple[str, ...]
  layouts: Tuple[_Layout, ...]
  group_regex: str

  @property
  def span(self) -> int:
    """The latest span ingested (0 without span folders): the Examples artifact's `span`."""
    return max(self.spans, default=0)

  def entries(self) -> Iterator[FileEntry]:
    """Every file of the selected spans as a FileEntry, in listing order (the folder is listed
    again)."""
    classifier = _Classifier(_absolute(self.input_base).rstrip('/'), self.group_regex)
    roots = {layout.folder: layout for layout in self.layouts}
    for listed in iter_files(self.input_base):
      folder, _, rest = listed.path.partition('/')
      if '' in roots:
        yield classifier.classify(roots[''], tuple(listed.path.split('/')), listed)
      elif folder in roots and rest:
        yield classifier.classify(roots[folder], tuple(rest.split('/')), listed)

  def candidates(self) -> Iterator[FileEntry]:
    return (e for e in self.entries() if e.is_candidate)


class _Classifier:
  """Turns a listed file into a FileEntry, following its root's layout."""

  def __init__(self, base: str, group_regex: str):
    self._base = base
    self._group_re = re.compile(group_regex) if group_regex else None

  def _entry(
    self, listed: ListedFile, source: str, reason: str = '', label: int = -1, role: str = ''
  ) -> FileEntry:
    group = ''
    if (
      self._group_re
      and not reason
      and (match := self._group_re.search(posixpath.basename(listed.path)))
    ):
      group = match.group(1) if match.re.groups else match.group(0)
    return FileEntry(
      path=listed.path,
      uri=FileSystems.join(self._base, *listed.path.split('/')),
      size=listed.size,
      source=source,
      label=label,
      role=role,
      group=group,
      ignored_reason=reason,
      kind=listed.kind,
    )

  def _class_file(
    self, parts: Tuple[str, ...], listed: ListedFile, role: str, source: str
  ) -> FileEntry:
    """A file at `parts` below the folder that holds class folders. A folder listed as an entry
    (path ending with '/': its last part is '') is a candidate when its files could be."""
    if any(_is_hidden(p) for p in parts):
      return self._entry(listed, source, HIDDEN)
    if parts == ('',):  # the folder holding the class folders: its class is unknown
      return self._entry(listed, source, role=role)
    if len(parts) == 1:
      return self._entry(listed, source, OUTSIDE_CLASS_FOLDERS)
    label = labels.class_index(parts[0])
    if label is None:
      return self._entry(listed, source, UNKNOWN_CLASS)
    if any(p.lower() in MASK_FOLDERS for p in parts[1:-1]):
      return self._entry(listed, source, MASK)
    entry = self._entry(listed, source, label=label, role=role)
    if parts[-1] and not _is_image_file(parts[-1], listed, entry.uri):
      return self._entry(listed, source, NOT_AN_IMAGE_FILE)
    return entry

  def _sourced_file(
    self,
    parts: Tuple[str, ...],
    listed: ListedFile,
    role: str,
    source: str,
    sources: Tuple[str, ...],
  ) -> FileEntry:
    """A file at `parts` below the folder holding the class folders or the source folders
    `sources`; a file inside a source folder takes the folder's name as its source."""
    if len(parts) > 1 and parts[0] in sources:
      return self._class_file(parts[1:], listed, role, parts[0])
    return self._class_file(parts, listed, role, source)

  def classify(self, layout: _Layout, parts: Tuple[str, ...], listed: ListedFile) -> FileEntry:
    """The entry of the file at `parts` below the layout's root folder."""
    where = layout.folder.split('/') if layout.folder else []
    for (
      wrapper
    ) in layout.wrappers:  # files beside the single folder entered are outside the class folders
      own_name = layout.source or posixpath.basename(posixpath.join(self._base, *where))
      if len(parts) == 1 or parts[0] != wrapper:
        return self._entry(
          listed, own_name, HIDDEN if any(map(_is_hidden, parts)) else OUTSIDE_CLASS_FOLDERS
        )
      parts, where = parts[1:], where + [wrapper]
    own_name = layout.source or posixpath.basename(posixpath.join(self._base, *where))
    if not layout.split_dirs:
      return self._sourced_file(parts, listed, 'any', own_name, layout.sources[''])
    if len(parts) > 1 and parts[0] in layout.split_dirs:
      return self._sourced_file(
        parts[1:],
        listed,
        SPLIT_FOLDER_ROLES[parts[0].lower()],
        layout.source or parts[0],
        layout.sources[parts[0]],
      )
    return self._entry(
      listed, own_name, HIDDEN if any(map(_is_hidden, parts)) else OUTSIDE_SPLIT_FOLDERS
    )


def discover(input_base: str, options: IngestOptions = IngestOptions()) -> Discovery:
  """The layout of input_base, from one listing that keeps only its folders; raises on an unusable
  layout, and on unknown class folders unless options.unknown_classes == 'ignore'."""
  folders, visible = (
    set(),
    set(),
  )  # folders holding a file; those holding a file with no hidden part
  for listed in iter_files(input_base):
    parts = tuple(listed.path.split('/'))
    shown = not any(map(_is_hidden, parts))
    for depth in range(1, len(parts)):
      folders.add(parts[:depth])
      if shown:
        visible.add(parts[:depth])
  spans = _select_spans(input_base, {f[0] for f in folders}, options.span)
  where_base = _absolute(input_base).rstrip('/')
  layouts = tuple(
    _layout(where_base, folder, f'span-{number}', folders) for number, folder in spans
  ) or (_layout(where_base, '', None, folders),)
  unknown = tuple(sorted(f for layout in layouts for f in _unknown_folders(layout, visible)))
  if unknown and options.unknown_classes == 'error':
    raise ValueError(
      f'Unknown class folder(s) {list(unknown)} under {input_base}: expected '
      f'{list(labels.CLASS_NAMES)} (case and separators ignored). Rename them, or pass '
      f"--ignore-unknown-classes (unknown_classes='ignore' in the API) to skip them "
      f'(they are then listed in the report).'
    )
  return Discovery(input_base, tuple(n for n, _ in spans), unknown, layouts, options.group_regex)
