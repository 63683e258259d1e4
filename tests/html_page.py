"""What an HTML page shows, read with the standard library's parser: its title, its elements, the
sources of its images and the text of its table rows. Used to check rendered reports."""

import html.parser


class Page(html.parser.HTMLParser):
  def __init__(self, text: str):
    super().__init__()
    self.title, self.tags, self.images, self.rows, self._open = '', [], [], [], []
    self.feed(text)
    self.close()

  def handle_starttag(self, tag, attrs):
    self.tags.append(tag)
    if tag == 'img':
      self.images.append(dict(attrs)['src'])
    elif tag == 'tr':
      self.rows.append([])
    elif tag in ('td', 'th'):
      self.rows[-1].append('')
    if tag not in ('img', 'meta', 'br', 'hr', 'link'):  # void elements never close
      self._open.append(tag)

  def handle_endtag(self, tag):
    if tag in self._open:
      del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

  def handle_data(self, data):
    if 'title' in self._open:
      self.title += data
    elif self._open and ({'td', 'th'} & set(self._open)):
      self.rows[-1][-1] += data
