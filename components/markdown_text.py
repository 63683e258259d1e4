"""Dataset-derived text made safe for Markdown (the run report and the model card): it renders as
itself, in a table cell too, in Python-Markdown and in CommonMark (GitHub)."""

import html
import re

# Characters Markdown gives a meaning to, as HTML character references. '_' only where it could
# open or close emphasis: between two letters or digits it is literal in CommonMark and
# Python-Markdown, so file names like covid_001.png stay readable in report.md.
_MARKDOWN_SYNTAX = re.compile(r'[|`\\*\[\]#~]|(?<![^\W_])_|_(?![^\W_])')
_LINE_BREAKS = re.compile(r'[\r\n\t\v\f]+')


def escape(text) -> str:
  """`text` from the data (a file path, a source folder name, a run id) as literal Markdown text,
  safe in a table cell: HTML's special characters and Markdown's syntax become character
  references, so that '|' cannot split a cell and '<img ...>' shows as text; line breaks become
  spaces. Hand-written: Python-Markdown has no escaping function and html.escape leaves Markdown's
  syntax alone."""
  text = _LINE_BREAKS.sub(' ', html.escape(str(text), quote=False))
  return _MARKDOWN_SYNTAX.sub(lambda m: f'&#{ord(m.group())};', text)
