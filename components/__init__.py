"""TFX component code for the chest X-ray pipeline: ingestion, Transform and Trainer modules.

The one place that sets TF_USE_LEGACY_KERAS: TFX 1.16's Transform layers need Keras 2 (tf-keras)
behind `tf.keras`. TensorFlow reads the variable at the first use of `tf.keras`, so importing
any module of this package first is enough; Beam workers inherit it from the environment.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
