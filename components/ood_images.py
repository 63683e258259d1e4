"""Deterministic images that are not chest X-rays, as PNG bytes: the Trainer's reference set for
choosing the out-of-distribution score (components.ood).

Kinds: uniform and Gaussian noise, flat grey, linear and radial gradients, rendered text,
checkerboards, cloud-like 1/f textures and photo-like scenes of coloured shapes. Each image is
drawn from its own random stream (seed, kind, index), so the same call gives the same bytes on any
machine, with no download. They stand for the inputs a CXR model is most often handed by mistake
(blank or test images, screenshots, documents, photos), not for every possible one.
"""

import io
from typing import Callable, Dict, List, Tuple

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

_WORDS = ('report', 'patient', 'scan', 'lorem', 'ipsum', 'image', 'page', 'table', 'total', 'ok')


def _png(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format='PNG')
  return buffer.getvalue()


def _grey(values: np.ndarray) -> np.ndarray:
  return (np.clip(values, 0.0, 1.0) * 255).round().astype(np.uint8)


def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
  v, u = np.mgrid[0 : 1 : complex(0, size), 0 : 1 : complex(0, size)]
  return u, v


def _uniform_noise(size: int, rng: np.random.Generator) -> np.ndarray:
  channels = (size, size, 3) if rng.random() < 0.5 else (size, size)
  return rng.integers(0, 256, channels, dtype=np.uint8)


def _gaussian_noise(size: int, rng: np.random.Generator) -> np.ndarray:
  return _grey(rng.normal(rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.3), (size, size)))


def _flat(size: int, rng: np.random.Generator) -> np.ndarray:
  return np.full((size, size), rng.integers(0, 256), dtype=np.uint8)


def _gradient(size: int, rng: np.random.Generator) -> np.ndarray:
  u, v = _grid(size)
  if rng.random() < 0.5:
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (u - 0.5) * np.cos(angle) + (v - 0.5) * np.sin(angle) + 0.5
  else:
    cu, cv = rng.uniform(0.2, 0.8, 2)
    ramp = np.hypot(u - cu, v - cv) / 0.8
  return _grey(ramp if rng.random() < 0.5 else 1.0 - ramp)


def _text(size: int, rng: np.random.Generator) -> np.ndarray:
  dark_on_light = rng.random() < 0.7
  image = Image.new('L', (size, size), 245 if dark_on_light else 10)
  draw = ImageDraw.Draw(image)
  font = ImageFont.load_default(size=max(8, size // int(rng.integers(8, 14))))
  line_height = font.size * 1.3
  for row in range(int(size / line_height)):
    words = ' '.join(rng.choice(_WORDS, int(rng.integers(2, 6))))
    draw.text((size * 0.05, row * line_height), words, fill=20 if dark_on_light else 235, font=font)
  return np.asarray(image)


def _checkerboard(size: int, rng: np.random.Generator) -> np.ndarray:
  u, v = _grid(size)
  squares = int(rng.integers(2, 12))
  board = (np.floor(u * squares) + np.floor(v * squares)) % 2
  low, high = sorted(rng.uniform(0, 1, 2))
  return _grey(low + (high - low) * board)


def _cloud_texture(size: int, rng: np.random.Generator) -> np.ndarray:
  """1/f^beta noise (beta about 2, the spectrum of natural images) rescaled to [0, 1]."""
  fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing='ij')
  frequency = np.hypot(fx, fy)
  frequency[0, 0] = 1.0
  spectrum = rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))
  field = np.real(np.fft.ifft2(spectrum / frequency ** rng.uniform(0.8, 1.2)))
  return _grey((field - field.min()) / (np.ptp(field) or 1.0))


def _shapes_scene(size: int, rng: np.random.Generator) -> np.ndarray:
  """A colour gradient 'sky' and 'ground' with overlapping ellipses and boxes, like a photo."""
  u, v = _grid(size)
  top, bottom = rng.uniform(0, 1, (2, 3))
  background = top * (1 - v[..., None]) + bottom * v[..., None]
  image = Image.fromarray((background * 255).astype(np.uint8), 'RGB')
  draw = ImageDraw.Draw(image)
  for _ in range(int(rng.integers(3, 9))):
    x0, y0 = rng.uniform(-0.1, 0.9, 2) * size
    w, h = rng.uniform(0.1, 0.5, 2) * size
    fill = tuple(int(c) for c in rng.integers(0, 256, 3))
    shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
    shape((x0, y0, x0 + w, y0 + h), fill=fill)
  return np.asarray(image)


KINDS: Dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
  'uniform_noise': _uniform_noise,
  'gaussian_noise': _gaussian_noise,
  'flat': _flat,
  'gradient': _gradient,
  'text': _text,
  'checkerboard': _checkerboard,
  'cloud_texture': _cloud_texture,
  'shapes_scene': _shapes_scene,
}


def generate(per_kind: int = 8, size: int = 128, seed: int = 0) -> List[Tuple[str, bytes]]:
  """(kind, PNG bytes) for `per_kind` images of each of KINDS, `size` x `size` pixels."""
  return [
    (kind, _png(draw(size, np.random.default_rng([seed, kind_index, i]))))
    for kind_index, (kind, draw) in enumerate(KINDS.items())
    for i in range(per_kind)
  ]
