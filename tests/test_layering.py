"""Layers go one way: `pipeline/` imports `components/`, never the reverse."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _imported_modules(path: pathlib.Path):
  """(line, module) of every import in a source file, nested and lazy imports included."""
  for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), str(path))):
    if isinstance(node, ast.Import):
      yield from ((node.lineno, alias.name) for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
      yield node.lineno, node.module


def _pipeline_imports_in_components(root: pathlib.Path = ROOT):
  return [
    f'{path.relative_to(root)}:{line}: {module}'
    for path in sorted((root / 'components').rglob('*.py'))
    for line, module in _imported_modules(path)
    if module == 'pipeline' or module.startswith('pipeline.')
  ]


def test_no_component_module_imports_the_pipeline_package():
  assert _pipeline_imports_in_components() == []


def test_the_scan_finds_lazy_and_from_imports(tmp_path):
  source = tmp_path / 'components' / 'sub' / 'm.py'
  source.parent.mkdir(parents=True)
  source.write_text(
    'import os\nfrom pipeline import configs\n\n'
    'def f():\n  import pipeline.cli\n  from tfx.orchestration import pipeline\n'
  )
  assert _pipeline_imports_in_components(tmp_path) == [
    'components/sub/m.py:2: pipeline',
    'components/sub/m.py:5: pipeline.cli',
  ]
