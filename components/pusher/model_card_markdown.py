"""The model card (components.pusher.model_card) as Markdown, through a Jinja2 template, as Model
Card Toolkit renders its cards.

Every value the template prints passes through markdown_text.escape (Jinja2's `finalize`), so a
string from the data (a source folder named `<img src=x onerror=alert(1)>` or holding a `|`)
shows as text and cannot break a table; only the template's own text is Markdown. Jinja2's
autoescape is for HTML and would leave `|`, `*`, `_` or `[` to act as Markdown.
"""

import json
from typing import Any, Mapping, Optional

import jinja2

from components import labels
from components import markdown_text


def _fmt(value: Optional[float]) -> str:
  """Four decimals, a count as it is; 'n/a' for a missing figure."""
  if value is None:
    return 'n/a'
  return str(value) if isinstance(value, int) else f'{value:.4f}'


def _interval(ci: Optional[Mapping[str, float]]) -> str:
  """'0.930–0.994'; 'n/a' without an interval."""
  return 'n/a' if not ci else f'{ci["lower_bound"]:.3f}–{ci["upper_bound"]:.3f}'


def _by_class(values: Optional[Mapping[str, float]]) -> str:
  """'COVID 27, NORMAL 25, VIRAL PNEUMONIA 24' (values by class name, label order); 'none'."""
  if not values:
    return 'none'
  return ', '.join(f'{name} {_fmt(values[name])}' for name in labels.CLASS_NAMES)


def _number(value: Optional[float]) -> str:
  """A count or threshold as written ('' when there is none)."""
  return '' if value is None else f'{value:g}'


_TEMPLATE = """\
{% set details = card.model_details %}
{% set parameters = card.model_parameters %}
{% set analysis = card.quantitative_analysis %}
{% set considerations = card.considerations %}
# Model card: {{ details.name }}, version {{ details.version.name }}

{{ details.overview }}

- Version: {{ details.version.name }}, pushed {{ details.version.date }}. {{ details.version.diff }}
- Folder: {{ details.path }}
{% if details.blessing %}
- Blessing: {{ 'BLESSED' if details.blessing.blessed else 'NOT BLESSED' }}
{% endif %}

## Model details

- Architecture: {{ parameters.model_architecture }}
{% if parameters.weights %}
- Backbone weights: {{ parameters.weights.description }}; warm start requested: \
{{ parameters.weights.warm_start_requested }}
{% endif %}
{% if parameters.training %}
- Training: best epoch {{ parameters.training.best_epoch }}, \
{{ parameters.training.train_examples }} training examples, {{ parameters.training.keras }}
{% if parameters.training.train_class_counts %}
- Training examples by class: {{ parameters.training.train_class_counts | by_class }}; class \
weights of the training loss: {{ parameters.training.class_weights | by_class }}
{% endif %}
{% endif %}
- Input: {{ parameters.input_format }}
- Output: {{ parameters.output_format }}

{% if parameters.hyperparameters %}
### Hyperparameters

| hyperparameter | value |
|---|---|
{% for key, value in parameters.hyperparameters | dictsort %}
| {{ key }} | {{ value | tojson_text }} |
{% endfor %}

{% endif %}
### Lineage (ML Metadata)

| role | type | artifact id | URI |
|---|---|---|---|
{% for artifact in details.lineage %}
| {{ artifact.role }} | {{ artifact.type }} | {{ artifact.id }} | {{ artifact.uri }} |
{% endfor %}

### References

{% for reference in details.references %}
- {{ reference.reference }}
{% endfor %}

## Intended use

{% for user in considerations.users %}
- User: {{ user.description }}
{% endfor %}
{% for use_case in considerations.use_cases %}
- {{ 'Intended' if use_case.kind == 'intended' else 'Out of scope' }}: {{ use_case.description }}
{% endfor %}

## Data

| split | role | spans | images |{% for name in class_names %} {{ name }} |{% endfor %}

|---|---|---|---|{% for name in class_names %}---|{% endfor %}

{% for split in parameters.data %}
| {{ split.name }} | {{ split.description }} | {{ split.spans | tojson_text }} | \
{{ split.images | number }} |{% for name in class_names %} \
{{ (split.classes or {}).get(name) | number }} |{% endfor %}

{% endfor %}
{% for split in parameters.data if split.sources %}

Sources of the {{ split.name }} split (Cramér's V {{ split.cramers_v | fmt }}):

| source |{% for name in class_names %} {{ name }} |{% endfor %}

|---|{% for name in class_names %}---|{% endfor %}

{% for source, row in split.sources | dictsort %}
| {{ source }} |{% for name in class_names %} {{ row.get(name, 0) }} |{% endfor %}

{% endfor %}
{% endfor %}

## Evaluation ({{ analysis.split }} split)

Intervals: 95% Wilson score. `images`: the images behind a proportion.

{% if analysis.gate %}
### Gate

| metric | class | kind | bound | value | 95% CI | images | result |
|---|---|---|---|---|---|---|---|
{% for check in analysis.gate %}
| {{ check.metric }} | {{ check['class'] or '' }} | {{ check.kind }} | {{ check.bound }} | \
{{ check.value | fmt }} | {{ check.confidence_interval | interval }} | \
{{ check.images | number }} | \
{{ 'pass' if check.passed else 'FAIL' }} |
{% endfor %}

{% endif %}
### Performance metrics

| metric | slice | value | 95% CI | images | threshold |
|---|---|---|---|---|---|
{% for metric in analysis.performance_metrics %}
| {{ metric.type }} | {{ metric.slice }} | {{ metric.value | fmt }} | \
{{ metric.get('confidence_interval') | interval }} | {{ metric.get('images') | number }} | \
{{ metric.get('threshold') | number }} |
{% endfor %}

### Calibration

{% if analysis.calibration %}
{% set calibration = analysis.calibration %}
{% if calibration.not_fitted %}
Temperature scaling not fitted: {{ calibration.not_fitted }}.
{% else %}
Temperature T = {{ '%.4g' | format(calibration.temperature) }}, fitted on the eval split \
({{ calibration.images }} images) to minimise the NLL and folded into the served model.
{% endif %}

| eval split | before scaling | after scaling |
|---|---|---|
| NLL | {{ calibration.nll_before | fmt }} | {{ calibration.nll | fmt }} |
| top-label ECE | {{ calibration.ece_before | fmt }} | {{ calibration.ece | fmt }} |
| Brier score | {{ calibration.brier_before | fmt }} | {{ calibration.brier | fmt }} |
{% else %}
No calibration record (no model_run given, or a model trained without temperature scaling).
{% endif %}

### COVID operating point

{% if analysis.operating_point %}
{% set point = analysis.operating_point %}
`covid_positive` when {{ point.comparison }}, threshold {{ point.threshold }}: the highest \
threshold reaching sensitivity {{ point.target_sensitivity }} on the eval split (eval \
sensitivity {{ point.eval_sensitivity | fmt }}, specificity {{ point.eval_specificity | fmt }}). \
Its test figures are in the table above (`operating point`).
{% else %}
No operating point stored with the model.
{% endif %}

### Shortcut audit (masking)

{% if analysis.audit %}
{% set audit = analysis.audit %}
| test split | accuracy | COVID recall |
|---|---|---|
| as served | {{ audit.accuracy | fmt }} | {{ audit.covid_recall | fmt }} |
| lung fields hidden | {{ audit.lungs_hidden_accuracy | fmt }} | \
{{ audit.lungs_hidden_covid_recall | fmt }} |
| border band hidden | {{ audit.borders_hidden_accuracy | fmt }} | \
{{ audit.borders_hidden_covid_recall | fmt }} |

Shortcut suspected: {{ 'yes' if audit.shortcut_suspected else 'no' }} (rule: accuracy with the \
lung fields hidden above chance {{ audit.chance | fmt }} + {{ audit.shortcut_margin }}\
{{ '' if audit.gated else '; blessing allowed anyway' }}).
{% else %}
Not audited: the evaluation predates the masking audit.
{% endif %}

### Out-of-distribution abstention

{% if analysis.ood %}
{% set abstention = analysis.ood %}
{% if abstention.appearance %}
`in_distribution` is false (not classified) when the {{ abstention.method }} score exceeds \
{{ '%.4g' | format(abstention.threshold) }} or the appearance score (Mahalanobis distance of the \
image's greyscale thumbnail to the training images) exceeds \
{{ '%.4g' | format(abstention.appearance.threshold) }}; together they accept \
{{ abstention.eval_accept_rate | fmt }} of the {{ abstention.eval_images }} eval images (target \
{{ abstention.target_eval_accept_rate }}).
{% else %}
`in_distribution` is false (not classified) when the {{ abstention.method }} score exceeds \
{{ '%.4g' | format(abstention.threshold) }}, which accepts {{ abstention.eval_accept_rate | fmt }} \
of the {{ abstention.eval_images }} eval images (target {{ abstention.target_eval_accept_rate }}).
{% endif %}
{% if abstention.note %}
Note: {{ abstention.note }}
{% endif %}
{% else %}
No abstention record (no model_run given, or a model trained before abstention).
{% endif %}

## Limitations

{% for limitation in considerations.limitations %}
- {{ limitation.description }}
{% endfor %}
{% if considerations.tradeoffs %}

## Trade-offs

{% for tradeoff in considerations.tradeoffs %}
- {{ tradeoff.description }}
{% endfor %}
{% endif %}

## Ethical considerations

| risk | mitigation |
|---|---|
{% for risk in considerations.ethical_considerations %}
| {{ risk.name }} | {{ risk.mitigation_strategy }} |
{% endfor %}
"""

_ENVIRONMENT = jinja2.Environment(
  finalize=markdown_text.escape,
  trim_blocks=True,
  lstrip_blocks=True,
  keep_trailing_newline=True,
  undefined=jinja2.StrictUndefined,
)
_ENVIRONMENT.filters.update(
  fmt=_fmt,
  by_class=_by_class,
  interval=_interval,
  number=_number,
  tojson_text=lambda value: json.dumps(value, ensure_ascii=False),
)


_COMPILED = _ENVIRONMENT.from_string(_TEMPLATE)


def render(card: Mapping[str, Any]) -> str:
  """The card as Markdown."""
  return _COMPILED.render(card=card, class_names=labels.CLASS_NAMES)
