"""The seed notebook's input, the baseline of the input and trainer benchmarks."""

import glob
import os

import numpy as np
from tf_keras.preprocessing import image as keras_image

ZOOM_RANGE = 0.07
FIT_SAMPLE = 64  # images ImageDataGenerator.fit sees (the seed fits on a sample so centring works)


def seed_flow(train_dir: str, image_size: int, batch_size: int):
  """The notebook's ImageDataGenerator (1/255, featurewise centring fitted on a sample, zoom 0.07)
  flowing sparse-labelled RGB batches from the class folders under `train_dir`."""
  generator = keras_image.ImageDataGenerator(
    rescale=1 / 255, featurewise_center=True, zoom_range=ZOOM_RANGE
  )
  sample_paths = sorted(glob.glob(os.path.join(train_dir, '*', '*.png')))[:FIT_SAMPLE]
  generator.fit(
    np.stack(
      [
        keras_image.img_to_array(keras_image.load_img(path, target_size=(image_size, image_size)))
        for path in sample_paths
      ]
    )
  )
  return generator.flow_from_directory(
    train_dir, target_size=(image_size, image_size), batch_size=batch_size, class_mode='sparse'
  )
