"""TensorFlow image ops shared by the Transform, the training input and the serving signatures."""
import tensorflow as tf

MODEL_CHANNELS = 3  # ResNet152V2 takes RGB


def decode_resized(encoded: tf.Tensor, image_size: int, channels: int) -> tf.Tensor:
  """Decodes one PNG/JPEG/BMP/GIF of any bit depth and resizes it: uint8 [size, size, channels].

  16-bit images are scaled to 8 bits; palette, grayscale, RGB and RGBA inputs all come out with
  `channels` channels (1: luminance, 3: RGB, alpha dropped).
  """
  image = tf.io.decode_image(encoded, channels=channels, dtype=tf.float32, expand_animations=False)
  image = tf.image.resize(image, [image_size, image_size], method='bilinear', antialias=True)
  return tf.image.convert_image_dtype(tf.clip_by_value(image, 0.0, 1.0), tf.uint8, saturate=True)


def decode_pixels(pixels_png: tf.Tensor, channels: int) -> tf.Tensor:
  """Decodes the Transform's compact `pixels_xf` PNG back to uint8 [size, size, channels]."""
  return tf.io.decode_png(pixels_png, channels=channels)


def model_input(pixels: tf.Tensor, pixel_mean: tf.Tensor, mode: str = 'featurewise_center') -> tf.Tensor:
  """uint8 or float pixels in [0, 255] ([..., H, W, C]) -> float32 model input [..., H, W, 3].

  `featurewise_center`: pixels / 255 - train-split mean per channel (the seed's ImageDataGenerator
  semantics). `resnet_v2`: pixels / 127.5 - 1 (what the ImageNet weights were trained on).
  """
  image = tf.cast(pixels, tf.float32)
  if mode == 'featurewise_center':
    image = image / 255.0 - tf.cast(pixel_mean, tf.float32)[..., tf.newaxis, tf.newaxis, :]
  elif mode == 'resnet_v2':
    image = image / 127.5 - 1.0
  else:
    raise ValueError(f"Unknown normalization mode {mode!r}: use 'featurewise_center' or 'resnet_v2'")
  if image.shape[-1] == 1:
    image = tf.repeat(image, MODEL_CHANNELS, axis=-1)
  return image
