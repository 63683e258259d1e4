"""report.html: the run's report.md as one self-contained, script-free HTML page.

The Markdown is the report's one model: Python-Markdown (with tables) renders it, so the two files
cannot disagree. Dataset-derived text reaches the Markdown escaped (markdown_text.escape); on top
of that the renderer here has raw HTML switched off, so any '<' in the Markdown shows as text.
Images are embedded as data: URIs (the page opens alone, e.g. as a mail attachment); the page is
a Jinja2 template with autoescape, and its Content-Security-Policy allows no script and no request,
only data: images and the inline style sheet.
"""

import base64
import mimetypes
import os

import jinja2
import markdown
from markdown import treeprocessors
import markupsafe

HTML_FILE = 'report.html'
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_PAGE = jinja2.Environment(autoescape=True).from_string(
  """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ policy }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: sans-serif; color: #222; max-width: 72em; margin: 1.5em auto; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: left; }
th { background: #eee; }
td { font-variant-numeric: tabular-nums; }
code { background: #eee; padding: 0 0.2em; }
img { max-width: 100%; }
</style>
</head>
<body>
{{ body }}
</body>
</html>
"""
)


class _NoRawHtml(markdown.Extension):
  """Treats HTML in the Markdown as text (Python-Markdown passes it through by default)."""

  def extendMarkdown(self, md):
    md.preprocessors.deregister('html_block')
    md.inlinePatterns.deregister('html')


class _EmbeddedImages(treeprocessors.Treeprocessor):
  """Replaces each image's file name by a data: URI of that file of the report folder."""

  def __init__(self, md, report_dir: str):
    super().__init__(md)
    self._report_dir = report_dir

  def run(self, root):
    for image in root.iter('img'):
      name = os.path.basename(image.get('src'))
      with open(os.path.join(self._report_dir, name), 'rb') as f:
        data = base64.b64encode(f.read()).decode('ascii')
      image.set('src', f'data:{mimetypes.guess_type(name)[0]};base64,{data}')


class _EmbedImages(markdown.Extension):
  def __init__(self, report_dir: str):
    super().__init__()
    self._report_dir = report_dir

  def extendMarkdown(self, md):
    md.treeprocessors.register(_EmbeddedImages(md, self._report_dir), 'embed_images', 5)


def write_html(markdown_text: str, title: str, report_dir: str) -> str:
  """Writes report_dir/report.html from the report's Markdown (its images: files of report_dir);
  returns its path. `title`: plain text (escaped here)."""
  body = markdown.markdown(
    markdown_text, extensions=['tables', _NoRawHtml(), _EmbedImages(report_dir)]
  )
  path = os.path.join(report_dir, HTML_FILE)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(_PAGE.render(policy=CONTENT_SECURITY_POLICY, title=title, body=markupsafe.Markup(body)))
  return path
