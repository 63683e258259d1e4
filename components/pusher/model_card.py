"""The model card of a pushed model version, as a dict: what the model is and where it came from,
what it was trained and tested on, every test figure with its 95% interval, and how it may and
may not be used.

The sections and field names are those of Model Card Toolkit's schema v0.0.2 (model_details,
model_parameters, quantitative_analysis, considerations; performance metrics with `type`,
`value`, `slice` and `confidence_interval` {`lower_bound`, `upper_bound`}). The toolkit itself
does not install beside TFX 1.16: model-card-toolkit 2.0.0 requires tensorflow-model-analysis
< 0.42, absl-py < 1.1 and jsonschema < 4, while requirements.lock has TFMA 0.47.1, absl-py 1.4.0
and jsonschema 4.26.0. So the card is a plain JSON-ready dict built here, its values numbers
rather than the toolkit's strings. What the schema has no field for sits under extra keys:
model_details.lineage (ML Metadata ids and URIs) and .blessing; model_parameters.signatures,
.weights, .hyperparameters and .training; each data entry's `path`, `spans`, `images`, `classes`,
`sources`, `cramers_v`; each metric's `images` and `threshold`; each use case's `kind`;
quantitative_analysis.split, .gate, .calibration and .operating_point.

Each section is one function of the loaded `_Facts`; a new section (e.g. an audit) is one more
function and one more entry in `build`, plus its part of the Markdown template
(components.pusher.model_card_markdown).
"""

import dataclasses
import datetime
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tfx import types
from tfx.utils import path_utils

from components import backbones
from components import hparams as hparams_lib
from components import labels
from components import ood
from components import training_report
from components.evaluation import audit_figures
from components.evaluation import classification_report
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import operating_point_figures
from components.evaluation import results
from components.ingestion import manifest
from components.ingestion.options import SPLITS
from components.ingestion.options import TEST
from components.pusher import model_card_markdown
from components.pusher import model_card_text

SCHEMA_VERSION = '0.0.2'  # Model Card Toolkit's schema whose field names the card follows
CARD_JSON = 'model_card.json'
CARD_MARKDOWN = 'model_card.md'
PROPORTIONS = ('precision', 'recall', 'specificity', 'npv')  # ClassFigures with an interval


@dataclasses.dataclass(frozen=True)
class CardInputs:
  """The Pusher's input artifacts the card is built from (None: not wired)."""

  model: types.Artifact
  evaluation: types.Artifact
  blessing: Optional[types.Artifact] = None
  examples: Optional[types.Artifact] = None
  ingest_report: Optional[types.Artifact] = None
  model_run: Optional[types.Artifact] = None


@dataclasses.dataclass(frozen=True)
class _Facts:
  """What the card says, read once from the artifacts."""

  inputs: CardInputs
  version: int
  version_dir: str
  pushed_at: datetime.datetime
  evaluation: results.Evaluation
  operating_point: Optional[operating_point_figures.OperatingPointFigures]
  history: Optional[Dict[str, Any]]  # model_run's history.json (hparams, best epoch, ...)
  calibration: Optional[Dict[str, Any]]  # model_run's calibration record (eval split)
  summary: Optional[Dict[str, Any]]  # the ingestion's summary.json
  signatures: Dict[str, Dict[str, Dict[str, str]]]  # {signature: {inputs|outputs: {name: spec}}}


def _number(value: Optional[float]) -> Optional[float]:
  """A JSON number: None for a missing or non-finite figure (e.g. the AUC of a one-class slice)."""
  return None if value is None or not math.isfinite(value) else float(value)


def _count(value: float) -> int:
  """A count TFMA stores as a float, as an integer."""
  return int(round(value))


def _ci(ci: Optional[classification_report.Interval]) -> Optional[Dict[str, float]]:
  return None if ci is None else {'lower_bound': ci.lower, 'upper_bound': ci.upper}


def _metric(
  kind: str,
  value: Optional[float],
  slice_name: str,
  ci: Optional[classification_report.Interval] = None,
  images: Optional[float] = None,
  threshold: Optional[float] = None,
) -> Dict[str, Any]:
  """A performance metric: type, value, slice; `confidence_interval` (95%), `images` (behind a
  proportion) and `threshold` when given."""
  metric = {
    'type': kind,
    'value': value if isinstance(value, int) else _number(value),
    'slice': slice_name,
  }
  if ci is not None:
    metric['confidence_interval'] = _ci(ci)
  if images is not None:
    metric['images'] = _count(images)
  if threshold is not None:
    metric['threshold'] = threshold
  return metric


def _proportion(kind: str, proportion: classification_report.Proportion, slice_name: str):
  return _metric(kind, proportion.value, slice_name, ci=proportion.ci, images=proportion.trials)


def _signatures(model_dir: str) -> Dict[str, Dict[str, Dict[str, str]]]:
  """The serving signatures' inputs and outputs, e.g. {'serving_default': {'inputs':
  {'image_bytes': 'string [-1]'}, ...}}, read from saved_model.pb without loading the model."""
  saved_model = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(os.path.join(model_dir, 'saved_model.pb'), 'rb') as f:
    saved_model.ParseFromString(f.read())
  meta_graph = next(m for m in saved_model.meta_graphs if 'serve' in m.meta_info_def.tags)

  def spec(info) -> str:
    shape = '?' if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
    return f'{tf.dtypes.as_dtype(info.dtype).name} {shape}'

  return {
    name: {
      'inputs': {key: spec(info) for key, info in sorted(signature.inputs.items())},
      'outputs': {key: spec(info) for key, info in sorted(signature.outputs.items())},
    }
    for name, signature in sorted(meta_graph.signature_def.items())
    if not name.startswith('__')  # TensorFlow's own, e.g. __saved_model_init_op
  }


def _load(inputs: CardInputs, version: int, version_dir: str, pushed_at) -> _Facts:
  evaluation = results.load_evaluation(inputs.evaluation.uri)
  model_run_uri = inputs.model_run.uri if inputs.model_run else None
  return _Facts(
    inputs=inputs,
    version=version,
    version_dir=version_dir,
    pushed_at=pushed_at,
    evaluation=evaluation,
    operating_point=operating_point_figures.load_operating_point(
      inputs.model.uri, inputs.evaluation.uri, evaluation.candidate
    ),
    history=training_report.read_history(model_run_uri),
    calibration=training_report.read_calibration(model_run_uri),
    summary=manifest.read_summary(inputs.ingest_report.uri) if inputs.ingest_report else None,
    signatures=_signatures(path_utils.serving_model_dir(inputs.model.uri)),
  )


def _blessing(blessing: Optional[types.Artifact]) -> Optional[Dict[str, Any]]:
  if blessing is None:
    return None
  return {
    'blessed': blessing.get_int_custom_property('blessed') == 1,
    **{
      key: blessing.get_int_custom_property(key)
      for key in ('current_model_id', 'baseline_model_id')
      if blessing.has_custom_property(key)
    },
  }


def _lineage(inputs: CardInputs) -> List[Dict[str, Any]]:
  """Each input artifact's role, ML Metadata type, id and URI."""
  return [
    {'role': field.name, 'type': artifact.type_name, 'id': artifact.id, 'uri': artifact.uri}
    for field in dataclasses.fields(inputs)
    if (artifact := getattr(inputs, field.name)) is not None
  ]


def model_details(facts: _Facts) -> Dict[str, Any]:
  blessing = _blessing(facts.inputs.blessing)
  baseline = (blessing or {}).get('baseline_model_id')
  return {
    'name': model_card_text.NAME,
    'overview': model_card_text.OVERVIEW,
    'version': {
      'name': str(facts.version),
      'date': facts.pushed_at.date().isoformat(),  # the schema's format: a date
      'diff': f'Blessed against the previously blessed model (ML Metadata artifact {baseline}).'
      if baseline is not None
      else 'Blessed without a baseline: the first blessed model.',
    },
    'path': facts.version_dir,
    'references': [{'reference': reference} for reference in model_card_text.REFERENCES],
    'lineage': _lineage(facts.inputs),
    'blessing': blessing,
  }


def _backbone(hparams: Mapping[str, Any]) -> str:
  """The backbone's Keras name (models trained before the choice existed have the default)."""
  return backbones.BACKBONES[hparams.get('backbone', hparams_lib.HParams.backbone)].application


def _architecture(hparams: Optional[Mapping[str, Any]]) -> str:
  if hparams is None:
    return 'A ResNet V2 with a dense head (hyperparameters not recorded: no model_run given).'
  frozen = (
    f'its first {hparams["freeze_layers"]} layers frozen'
    if hparams['freeze_layers']
    else 'every layer trained'
  )
  head = ' -> '.join(
    f'Dense({units}, ReLU) -> Dropout({hparams["dropout"]}) -> BatchNormalization'
    for units in hparams['dense_units']
  )
  return (
    f'{_backbone(hparams)} without its top ({frozen}) -> '
    f'GlobalAveragePooling2D -> {head} -> Dense({labels.NUM_CLASSES}, softmax) with the '
    f'calibration temperature folded in. Input: {hparams["image_size"]} px, '
    f'{hparams["image_channels"]} channel(s), {hparams["normalization"]} normalization.'
  )


def _weights(hparams: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
  if hparams is None:
    return None
  weights = hparams['weights']
  descriptions = {
    'imagenet': f'ImageNet (Keras {_backbone(hparams)} notop weights)',
    'none': 'random',
  }
  return {
    'backbone': weights,
    'description': descriptions.get(weights, f'weights file {os.path.basename(weights)}'),
    'warm_start_requested': hparams['warm_start'],  # from the last blessed model, if any
  }


def _datasets(summary: Optional[Mapping[str, Any]], examples: Optional[types.Artifact]):
  """One entry per split: its role, and its counts per class and per source when the ingestion
  summary is given."""
  roles = {
    'train': 'fits the weights',
    'eval': 'picks the epoch, fits the temperature and the COVID operating point',
    'test': 'evaluation and gate only',
  }
  spans = summary['spans'] if summary else ([examples.span] if examples else None)
  data = []
  for split in SPLITS:
    entry = {
      'name': split,
      'description': f'{split} split: {roles[split]}',
      'spans': spans,
      **dict.fromkeys(('path', 'images', 'classes', 'sources', 'cramers_v')),
    }
    if summary:
      counts = summary['splits'][split]
      figures = summary['confounding'][split]
      entry.update(
        path=summary['input_base'],
        images=counts['total'],
        classes={name: counts[name] for name in labels.CLASS_NAMES},
        sources=figures['table'],
        cramers_v=figures['cramers_v'],
      )
    data.append(entry)
  return data


def _format(signatures: Mapping[str, Mapping[str, Mapping[str, str]]], side: str) -> str:
  return '; '.join(
    f'{name}: ' + ', '.join(f'{key} ({spec})' for key, spec in signature[side].items())
    for name, signature in signatures.items()
  )


def model_parameters(facts: _Facts) -> Dict[str, Any]:
  history = facts.history or {}
  hparams = history.get('hparams')
  return {
    'model_architecture': _architecture(hparams),
    'data': _datasets(facts.summary, facts.inputs.examples),
    'input_format': _format(facts.signatures, 'inputs'),
    'output_format': _format(facts.signatures, 'outputs'),
    'signatures': facts.signatures,
    'weights': _weights(hparams),
    'hyperparameters': hparams,
    'training': {
      key: history.get(key)
      for key in ('best_epoch', 'train_examples', 'train_class_counts', 'class_weights', 'keras')
    }
    if history
    else None,
  }


def _overall_metrics(evaluation: results.Evaluation) -> List[Dict[str, Any]]:
  report, overall = evaluation.report, evaluation.metrics.get(results.OVERALL, {})
  slice_name = results.OVERALL
  metrics = [_proportion('accuracy', report.accuracy, slice_name)]
  for name, figures in zip(report.class_names, report.per_class):
    metrics += [_proportion(f'{p} ({name})', getattr(figures, p), slice_name) for p in PROPORTIONS]
    metrics += [
      _metric(f'f1 ({name})', figures.f1, slice_name),
      _metric(f'support ({name})', _count(figures.support), slice_name),
    ]
  for average, scores in (('macro avg', report.macro_avg), ('weighted avg', report.weighted_avg)):
    metrics += [
      _metric(f'{score} ({average})', getattr(scores, score), slice_name)
      for score in ('precision', 'recall', 'f1')
    ]
  for class_id, name in enumerate(labels.CLASS_NAMES + ('macro avg',)):
    metric = results.MetricId(
      eval_config_lib.AUC,
      class_id=class_id if class_id < labels.NUM_CLASSES else None,
      macro=class_id == labels.NUM_CLASSES,
      model_name=evaluation.candidate,
    )
    metrics.append(_metric(f'roc_auc ({name})', overall.get(metric), slice_name))
  for name in (eval_config_lib.TOP_LABEL_ECE, eval_config_lib.BRIER):
    value = overall.get(results.MetricId(name, model_name=evaluation.candidate))
    metrics.append(_metric(name, value, slice_name))
  return metrics


def _source_metrics(evaluation: results.Evaluation) -> List[Dict[str, Any]]:
  """Accuracy and COVID recall, with their intervals and images, per slice (`source` and the
  subgroups: view position, sex, age band, manufacturer)."""
  model = evaluation.candidate
  accuracy = results.MetricId(eval_config_lib.ACCURACY, model_name=model)
  recall = results.MetricId(eval_config_lib.ARGMAX_RECALL, class_id=labels.COVID, model_name=model)
  count = results.MetricId(eval_config_lib.EXAMPLE_COUNT, model_name=model)
  support = recall._replace(name=eval_config_lib.ARGMAX_SUPPORT)
  metrics = []
  for slice_name, values in sorted(evaluation.metrics.items()):
    if slice_name == results.OVERALL:
      continue
    for kind, metric, images in (
      ('accuracy', accuracy, count),
      (f'recall ({labels.CLASS_NAMES[labels.COVID]})', recall, support),
    ):
      metrics.append(
        _metric(
          kind,
          values.get(metric),
          slice_name,
          ci=results.interval(values, metric),
          images=values.get(images),
        )
      )
  return metrics


def _operating_point(
  figures: Optional[operating_point_figures.OperatingPointFigures],
) -> List[Dict[str, Any]]:
  """The test split's COVID sensitivity and specificity at the stored threshold."""
  if figures is None:
    return []
  point = figures.point
  return [
    _metric(
      f'{name} ({point.class_name}, operating point)',
      proportion.value,
      results.OVERALL,
      ci=proportion.ci,
      images=proportion.trials,
      threshold=point.threshold,
    )
    for name, proportion in (
      ('sensitivity', figures.sensitivity),
      ('specificity', figures.specificity),
    )
  ]


def _gate(evaluation: results.Evaluation) -> List[Dict[str, Any]]:
  return [
    {
      'metric': check.metric.name,
      'class': None if check.metric.class_id is None else labels.CLASS_NAMES[check.metric.class_id],
      'kind': check.kind,
      'bound': check.bound,
      'value': _number(check.value),
      'confidence_interval': _ci(check.ci),
      'images': None if check.images is None else _count(check.images),
      'passed': check.passed,
    }
    for check in evaluation.checks
  ]


def quantitative_analysis(facts: _Facts) -> Dict[str, Any]:
  """Every test figure (overall, at the operating point, per source and subgroup slice); the gate's
  checks; the Trainer's calibration record (eval split) and operating point; the masking audit; the
  out-of-distribution abstention record."""
  point = facts.operating_point
  return {
    'split': TEST,
    'performance_metrics': _overall_metrics(facts.evaluation)
    + _operating_point(point)
    + _source_metrics(facts.evaluation),
    'gate': _gate(facts.evaluation),
    'calibration': facts.calibration,
    'operating_point': point.point.to_json() if point else None,
    'audit': audit_figures.audit_json(
      facts.evaluation.metrics.get(results.OVERALL, {}),
      facts.evaluation.checks,
      facts.evaluation.candidate,
      audit_figures.load_regions(facts.inputs.model.uri),
    ),
    'ood': ood.read(facts.inputs.model_run.uri if facts.inputs.model_run else None),
  }


def _data_limitations(facts: _Facts) -> List[str]:
  """What this run's data and figures say about how far the figures can be trusted."""
  found = []
  report = facts.evaluation.report
  covid = report.per_class[labels.COVID].recall
  found.append(
    f'Test split size: {report.accuracy.trials:g} images, {covid.trials:g} of them COVID. '
    f'95% intervals: accuracy {report.accuracy.ci.lower:.3f}-{report.accuracy.ci.upper:.3f}, '
    f'COVID recall {covid.ci.lower:.3f}-{covid.ci.upper:.3f}.'
  )
  if facts.operating_point:
    sensitivity = facts.operating_point.point.sensitivity
    found.append(
      f'The COVID threshold was chosen on {sensitivity.trials:g} COVID images of the eval split '
      f'(eval sensitivity 95% CI {sensitivity.ci.lower:.3f}-{sensitivity.ci.upper:.3f}).'
    )
  if facts.summary:
    confounding = facts.summary['confounding']
    if confounding['warning']:
      found.append(f'{confounding["warning"]} (allowed by --allow-confounded-sources).')
    test = confounding[TEST]
    if test['cramers_v'] is None:
      found.append(f'Class x source association of the test split not measurable: {test["note"]}.')
    else:
      found.append(
        f"Class x source association of the test split: Cramér's V {test['cramers_v']:.3f} "
        '(0: every source holds the classes alike; 1: each source holds one class).'
      )
  if facts.calibration and facts.calibration.get('not_fitted'):
    found.append(f'Calibration temperature not fitted: {facts.calibration["not_fitted"]}.')
  return found


def considerations(facts: _Facts) -> Dict[str, Any]:
  tradeoffs = []
  if facts.operating_point:
    point = facts.operating_point.point
    tradeoffs.append(
      f'covid_positive (P(COVID) > {point.threshold:g}) favours sensitivity (target '
      f'{point.target_sensitivity:g} on the eval split) over specificity, so it can be true '
      'for an image whose most probable class is another.'
    )
  return {
    'users': [{'description': text} for text in model_card_text.USERS],
    'use_cases': [{'kind': kind, 'description': text} for kind, text in model_card_text.USE_CASES],
    'limitations': [
      {'description': text}
      for text in model_card_text.LIMITATIONS + tuple(_data_limitations(facts))
    ],
    'tradeoffs': [{'description': text} for text in tradeoffs],
    'ethical_considerations': [
      {'name': name, 'mitigation_strategy': strategy}
      for name, strategy in model_card_text.ETHICAL_CONSIDERATIONS
    ],
  }


def build(
  inputs: CardInputs, version: int, version_dir: str, pushed_at: datetime.datetime
) -> Dict[str, Any]:
  """The card of `inputs.model` published as `version` in `version_dir`."""
  facts = _load(inputs, version, version_dir, pushed_at)
  return {
    'schema_version': SCHEMA_VERSION,
    'model_details': model_details(facts),
    'model_parameters': model_parameters(facts),
    'quantitative_analysis': quantitative_analysis(facts),
    'considerations': considerations(facts),
  }


def card_files(card: Mapping[str, Any]) -> Dict[str, bytes]:
  """{CARD_JSON: the card as JSON, CARD_MARKDOWN: as Markdown}, for the version folder."""
  return {
    CARD_JSON: json.dumps(card, indent=2, allow_nan=False).encode(),
    CARD_MARKDOWN: model_card_markdown.render(card).encode(),
  }
