"""Class weights: sklearn's 'balanced' weights from the train split's label counts, and what they
do to the minority class's recall through trainer.fit_best."""

import numpy as np
import pytest
from sklearn import metrics as sk_metrics
from sklearn.utils import class_weight as sk_class_weight
import tensorflow as tf

from components import class_weights
from components import features
from components import hparams
from components import labels
from components import trainer

IMBALANCED = (200, 40, 15)  # train examples of COVID, NORMAL, VIRAL PNEUMONIA
MINORITY = 2


def test_balanced_weights_are_sklearns_and_none_is_unweighted():
  y = np.repeat(np.arange(labels.NUM_CLASSES), IMBALANCED)
  expected = sk_class_weight.compute_class_weight('balanced', classes=np.unique(y), y=y)
  weights = class_weights.compute('balanced', IMBALANCED)
  assert list(weights) == [0, 1, 2]
  assert list(weights.values()) == pytest.approx(expected, rel=1e-12)
  assert weights[MINORITY] == pytest.approx(255 / (3 * 15))
  assert class_weights.compute('balanced', (30, 30, 30)) == {0: 1.0, 1: 1.0, 2: 1.0}
  assert class_weights.compute('none', IMBALANCED) is None


def test_a_class_absent_from_the_train_split_is_a_one_line_error():
  with pytest.raises(ValueError) as error:
    class_weights.compute('balanced', (12, 0, 3))
  assert str(error.value) == (
    'No NORMAL example in the train split, so no balanced class weight for it; '
    'ingest every class or train with --class-weight none'
  )
  assert class_weights.compute('none', (12, 0, 3)) is None


def test_the_record_names_the_classes():
  assert class_weights.record(np.array(IMBALANCED), class_weights.compute('none', IMBALANCED)) == {
    'train_class_counts': {'COVID': 200, 'NORMAL': 40, 'VIRAL PNEUMONIA': 15},
    'class_weights': None,
  }
  record = class_weights.record(IMBALANCED, {0: 0.5, 1: 2.0, 2: 6.0})
  assert record['class_weights'] == {'COVID': 0.5, 'NORMAL': 2.0, 'VIRAL PNEUMONIA': 6.0}


def _write_transformed(path, label_values):
  """Gzip TFRecords shaped as the Transform's output: label_xf beside a pixels feature."""
  with tf.io.TFRecordWriter(str(path), options='GZIP') as writer:
    for label in label_values:
      feature = {
        features.LABEL_XF: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        features.PIXELS_XF: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'png'])),
      }
      writer.write(
        tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
      )


def test_count_labels_counts_every_file_of_the_split(tmp_path):
  rng = np.random.default_rng(0)
  y = rng.permutation(np.repeat(np.arange(labels.NUM_CLASSES), IMBALANCED))
  _write_transformed(tmp_path / 'data-00000-of-00002.gz', y[:100])
  _write_transformed(tmp_path / 'data-00001-of-00002.gz', y[100:])
  counts = class_weights.count_labels([str(tmp_path / 'data-*')])
  assert counts.tolist() == list(IMBALANCED)
  assert class_weights.count_labels([str(tmp_path / 'nothing-*')]).tolist() == [0, 0, 0]
  _write_transformed(tmp_path / 'bad.gz', [0, 3])
  with pytest.raises(ValueError, match=r'^Label 3 in .* is not one of the 3 classes; re-run'):
    class_weights.count_labels([str(tmp_path / 'bad.gz')])


def _gaussians(counts, seed):
  """2-D points around three means a little over 1 sd apart: separable, but overlapping."""
  rng = np.random.default_rng(seed)
  means = np.array([[0.0, 0.0], [1.3, 0.0], [0.65, 1.1]])
  y = np.repeat(np.arange(labels.NUM_CLASSES), counts)
  return (means[y] + rng.normal(0, 1, (len(y), 2))).astype(np.float32), y


def _fit(class_weight):
  """Softmax regression fitted by trainer.fit_best on the imbalanced set, same seed each time;
  returns the model, the history, the best epoch and the eval dataset."""
  tf.keras.utils.set_random_seed(0)
  x, y = _gaussians(IMBALANCED, seed=1)
  x_eval, y_eval = _gaussians((80, 16, 6), seed=2)  # the eval split is as imbalanced
  train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=0).batch(32).repeat()
  evaluation = tf.data.Dataset.from_tensor_slices((x_eval, y_eval)).batch(64)
  model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(3, 'softmax')])
  model.compile(tf.keras.optimizers.Adam(0.05), 'sparse_categorical_crossentropy')
  hp = hparams.resolve('seed', {'epochs': 15, 'seed': 0})
  history, best_epoch = trainer.fit_best(
    model, train, evaluation, hp, steps_per_epoch=8, class_weight=class_weight
  )
  return model, history, best_epoch, evaluation


def test_balanced_weights_raise_the_minority_recall_and_leave_val_loss_unweighted():
  weights = class_weights.compute('balanced', IMBALANCED)
  x_test, y_test = _gaussians((500, 500, 500), seed=3)
  recalls = {}
  for name, class_weight in (('none', None), ('balanced', weights)):
    model, history, best_epoch, evaluation = _fit(class_weight)
    predicted = np.argmax(model.predict(x_test, verbose=0), axis=1)
    recalls[name] = sk_metrics.recall_score(y_test, predicted, average=None)
    # The restored epoch's val_loss is the plain (unweighted) loss on the eval split.
    assert best_epoch == int(np.argmin(history['val_loss'])) + 1
    assert model.evaluate(evaluation, verbose=0) == pytest.approx(
      history['val_loss'][best_epoch - 1], rel=1e-5
    )
  print('recall by class, none:', recalls['none'], 'balanced:', recalls['balanced'])
  assert recalls['balanced'][MINORITY] > recalls['none'][MINORITY] + 0.2
  assert recalls['balanced'][1] > recalls['none'][1]  # the other minority class gains too
