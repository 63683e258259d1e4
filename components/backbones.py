"""The backbones the Trainer can build: Keras' ResNet V2 family, without its top.

ResNet152V2 is the seed notebook's and the default. ResNet50V2 and ResNet101V2 share its blocks,
input range and last stage (`post_relu`, 1/32 of the input size), so everything after the base
(head, Grad-CAM, signatures) is the same; they train and load several times faster on CPU.
The weights' address and MD5 are tf_keras's (resnet.py BASE_WEIGHTS_PATH, WEIGHTS_HASHES), copied
so that `cxr` names the file to fetch offline without importing TensorFlow; tests/test_model.py
checks that they stay tf_keras's.
"""

import dataclasses
from typing import Dict

_WEIGHTS_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/resnet/'


@dataclasses.dataclass(frozen=True)
class Backbone:
  """A tf.keras.applications ResNet V2 and its ImageNet notop weights file."""

  application: str  # the constructor's name in tf.keras.applications, e.g. 'ResNet152V2'
  notop_md5: str  # tf_keras/src/applications/resnet.py WEIGHTS_HASHES

  @property
  def name(self) -> str:
    """Keras' name of the base model (its layer name inside ours)."""
    return self.application.lower()

  @property
  def weights_file(self) -> str:
    return f'{self.name}_weights_tf_dim_ordering_tf_kernels_notop.h5'

  @property
  def weights_url(self) -> str:
    return _WEIGHTS_URL + self.weights_file


BACKBONES: Dict[str, Backbone] = {
  b.name: b
  for b in (
    Backbone('ResNet50V2', 'fac2f116257151a9d068a22e544a4917'),
    Backbone('ResNet101V2', 'c0ed64b8031c3730f411d2eb4eea35b5'),
    Backbone('ResNet152V2', 'ed17cf2e0169df9d443503ef94b23b33'),
  )
}
