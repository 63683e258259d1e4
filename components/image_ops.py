"""TensorFlow image ops shared by the Transform, the training input and the serving signatures."""

import tensorflow as tf

from components.image_spec import NORMALIZATIONS

MODEL_CHANNELS = 3  # ResNet152V2 takes RGB


def decode_resized(encoded: tf.Tensor, image_size: int, channels: int) -> tf.Tensor:
  """Decodes one PNG/JPEG/BMP/GIF of any bit depth and resizes it: uint8 [size, size, channels].

  16-bit images are scaled to 8 bits (x / 65535, not clipped). Palette images are expanded.
  Grayscale (+alpha) and RGB(A) inputs both come out with `channels` channels: 1 is the ITU-R
  601 luminance (PIL's convert('L')), 3 is RGB with grey replicated; alpha is dropped. The
  resize is bilinear with antialiasing (PIL's BILINEAR), done in float and rounded once, on the
  fewest channels: a grey image is resized as one channel and replicated afterwards, the same
  values as resizing three copies (the resize treats channels independently); a 1024 px grey PNG
  to 224 px RGB took 24 ms instead of 40 on one core.
  """
  image = _decode(encoded)
  is_colour = tf.shape(image)[-1] >= 3
  if channels == 1:
    grey = tf.cond(
      is_colour, lambda: tf.image.rgb_to_grayscale(image[..., :3]), lambda: image[..., :1]
    )
    return _resized_uint8(grey, image_size)
  if channels == 3:
    return tf.cond(
      is_colour,
      lambda: _resized_uint8(image[..., :3], image_size),
      lambda: tf.image.grayscale_to_rgb(_resized_uint8(image[..., :1], image_size)),
    )
  raise ValueError(f'image_channels must be 1 or 3, got {channels}')


def _resized_uint8(image: tf.Tensor, image_size: int) -> tf.Tensor:
  """float [H, W, C] in [0, 1] -> uint8 [size, size, C], bilinear with antialiasing."""
  image = tf.image.resize(image, [image_size, image_size], method='bilinear', antialias=True)
  return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)


def _decode(encoded: tf.Tensor) -> tf.Tensor:
  """Encoded image -> float32 [H, W, native channels] in [0, 1].

  JPEG uses the accurate integer IDCT, bit-identical to PIL (the default fast IDCT is up to 6
  levels off).
  """
  return tf.cond(
    tf.io.is_jpeg(encoded),
    lambda: tf.image.convert_image_dtype(
      tf.io.decode_jpeg(encoded, dct_method='INTEGER_ACCURATE'), tf.float32
    ),
    lambda: tf.io.decode_image(encoded, dtype=tf.float32, expand_animations=False),
  )


def decode_pixels(pixels_png: tf.Tensor, channels: int) -> tf.Tensor:
  """Decodes the Transform's compact `pixels_xf` PNG back to uint8 [size, size, channels]."""
  return tf.io.decode_png(pixels_png, channels=channels)


def model_input(pixels: tf.Tensor, pixel_mean: tf.Tensor, mode: str) -> tf.Tensor:
  """uint8 or float pixels in [0, 255] ([..., H, W, C]) -> float32 model input [..., H, W, 3].

  `featurewise_center`: pixels / 255 - train-split mean (`pixel_mean` [..., C], the
  seed's ImageDataGenerator semantics). `resnet_v2`: pixels / 127.5 - 1 (what the ImageNet
  weights were trained on; `pixel_mean` is ignored).
  """
  image = tf.cast(pixels, tf.float32)
  if mode == 'featurewise_center':
    image = image / 255.0 - tf.cast(pixel_mean, tf.float32)[..., tf.newaxis, tf.newaxis, :]
  elif mode == 'resnet_v2':
    image = image / 127.5 - 1.0
  else:
    raise ValueError(f'Unknown normalization mode {mode!r}: use one of {NORMALIZATIONS}')
  if image.shape[-1] == 1:
    image = tf.repeat(image, MODEL_CHANNELS, axis=-1)
  return image


def hide_region(pixels: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """Pixels [N, H, W, C] with `mask` (bool [H, W]) replaced by each image's mean per channel,
  rounded to the pixels' dtype: the masking audit's occlusion (components/audit.py)."""
  values = tf.cast(pixels, tf.float32)
  mean = tf.reduce_mean(values, axis=[1, 2], keepdims=True)
  hidden = tf.where(mask[tf.newaxis, :, :, tf.newaxis], mean, values)
  return tf.cast(tf.round(hidden), pixels.dtype) if pixels.dtype.is_integer else hidden
