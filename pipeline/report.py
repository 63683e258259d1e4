"""`cxr report`: the report of one pipeline run, read back from ML Metadata, as Markdown and HTML.

OUTPUT/reports/<run id>/report.md holds the blessing decision and the gate's checks with their 95%
intervals, the test-split classification report (argmax, the gate's own computation: per class
precision, recall, specificity, NPV with Wilson intervals, F1, support), ROC AUC, the confusion
matrix (also as a PNG heatmap), the COVID operating point (the threshold stored with the evaluated
model, components.operating_point) with the test sensitivity and specificity at it and the COVID ROC
and precision-recall curves, the masking audit (accuracy and COVID recall with the lung fields, then
the border band, hidden; whether a shortcut is suspected), the comparison with the blessed baseline,
metrics by source and subgroup, the class x source association of the ingested data (Cramér's V
per split, the test classes confounded with their source), the drift check of the span against the
previous accepted span (each feature's distance and threshold), the calibration (the Trainer's
temperature and eval-split figures before and after it, the test split's ECE and Brier score from
the Evaluator, a reliability diagram), the training curves (PNGs written by the Trainer into its
model_run artifact) and the data accounting (the ingest report: images per split and class, each
quarantined, duplicate and ignored file, the bad fraction, the patients). report.html beside it is
the same Markdown rendered as one self-contained page (images embedded, no script). Every string
that comes from the data (file paths, source folders, slice names, the run id) goes through
markdown_text.escape, so a folder named '<img src=x onerror=alert(1)>' or 'a|b' shows as text and
keeps the tables whole.

`report_json` gives the same figures as one JSON-ready dict (`cxr report --json`): its
`confounding` is the ingestion summary's entry (components/ingestion/confounding.py; None for runs
ingested before it existed), `operating_point` is None for a model stored without one,
`calibration` None for a model trained without it, `audit` None for an evaluation that predates
the masking audit, `ood` (the Trainer's abstention record) None for a model trained before it,
`data` (report_data.data_json: counts and every quarantined, duplicate and
ignored file) None for a run whose examples have no ingest report, and `drift` (the drift check's
result and summary) None for a run from before the drift check.

This module assembles the report; its parts live in pipeline/report_*.py: report_run (the run's
artifacts in ML Metadata, the evaluation read back), report_gate, report_metrics,
report_operating_point, report_audit, report_sources, report_drift, report_calibration,
report_training, report_data (the sections), report_format (names, formats, tables and escaping
they share) and report_html (the HTML page).
"""

import datetime
import logging
import os
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ml_metadata.proto import metadata_store_pb2

from components import labels
from components import markdown_text
from components import ood
from components import training_report
from components.evaluation import audit_figures
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import operating_point_figures
from components.evaluation import results
from pipeline import report_audit
from pipeline import report_calibration
from pipeline import report_data
from pipeline import report_drift
from pipeline import report_explain
from pipeline import report_format
from pipeline import report_gate
from pipeline import report_html
from pipeline import report_metrics
from pipeline import report_ood
from pipeline import report_operating_point
from pipeline import report_run
from pipeline import report_sources
from pipeline import report_training
from pipeline.output_layout import layout

REPORT_FILE = 'report.md'


class ReportFiles(NamedTuple):
  """Paths of the report written: report.md and report.html."""

  markdown: str
  html: str


def _markdown(run: report_run.RunArtifacts, output_root: str, report_dir: str) -> List[str]:
  evaluation = results.load_evaluation(run.evaluation.uri)
  candidate, report, matrix = evaluation.candidate, evaluation.report, evaluation.matrix
  overall = evaluation.metrics.get(results.OVERALL, {})
  report_metrics.save_confusion_matrix_png(
    matrix, os.path.join(report_dir, report_metrics.CONFUSION_MATRIX_PNG)
  )

  lines = [
    f'# {markdown_text.escape(_title(run.run_id))}',
    '',
    f'- Generated: {datetime.datetime.now().isoformat(timespec="seconds")}',
    f'- Output folder: `{output_root}`',
    f'- Model: `{run.model.uri if run.model else "n/a"}`',
    f'- Evaluation: `{run.evaluation.uri}`',
    '',
  ]
  lines += report_gate.gate_section(
    run.blessed(), evaluation.checks, run.pushed_to(), evaluation.baseline is not None
  )
  lines += [
    f'## Classification report (test split, {report.accuracy.trials:g} images, argmax)',
    '',
    'Each class against the rest; intervals: 95% Wilson score.',
    '',
  ]
  lines += report_metrics.classification_report_table(report) + ['']
  auc = [
    results.MetricId(eval_config_lib.AUC, class_id=i, model_name=candidate)
    for i in range(labels.NUM_CLASSES)
  ]
  auc.append(results.MetricId(eval_config_lib.AUC, macro=True, model_name=candidate))
  lines += (
    ['ROC AUC, one class vs the rest:', '']
    + report_format.table(
      ['class', 'ROC AUC'],
      [
        [name, report_format.fmt(overall.get(metric))]
        for name, metric in zip(labels.CLASS_NAMES + ('macro avg',), auc)
      ],
    )
    + ['']
  )
  lines += ['## Confusion matrix', '', 'Rows: true class; columns: predicted class (argmax).', '']
  lines += report_format.table(
    [''] + list(labels.CLASS_NAMES),
    [[name] + [f'{count:g}' for count in row] for name, row in zip(labels.CLASS_NAMES, matrix)],
  )
  lines += ['', f'![Confusion matrix]({report_metrics.CONFUSION_MATRIX_PNG})', '']
  figures = _run_operating_point(run, evaluation)
  if figures:
    report_operating_point.save_curve_pngs(figures, report_dir)
  lines += report_operating_point.operating_point_section(figures)
  if evaluation.baseline is not None:
    lines += report_metrics.baseline_section(
      overall,
      candidate,
      evaluation.baseline,
      run.baseline_model.uri if run.baseline_model else 'n/a',
    )
  audit, explained = _audit(run, evaluation, report_dir)
  lines += report_audit.audit_section(audit)
  lines += report_explain.explain_section(explained)
  lines += report_ood.ood_section(ood.read(run.model_run.uri if run.model_run else None))
  lines += report_metrics.slices_section(evaluation.metrics, candidate)
  lines += report_sources.sources_section(run.confounding())
  lines += report_drift.drift_section(run.drift())
  model_run_uri = run.model_run.uri if run.model_run else None
  lines += report_calibration.calibration_section(
    report_calibration.calibration_json(
      training_report.read_calibration(model_run_uri), overall, candidate
    ),
    model_run_uri,
    report_dir,
  )
  lines += report_training.training_section(model_run_uri, report_dir)
  return lines + report_data.data_section(report_data.data_json(_ingest_report_uri(run)))


def _title(run_id: str) -> str:
  return f'Run report: {run_id}'


def _ingest_report_uri(run: report_run.RunArtifacts) -> Optional[str]:
  return run.ingest_report.uri if run.ingest_report else None


def _run_operating_point(
  run: report_run.RunArtifacts, evaluation: results.Evaluation
) -> Optional[operating_point_figures.OperatingPointFigures]:
  if run.model is None:
    return None
  return operating_point_figures.load_operating_point(
    run.model.uri, run.evaluation.uri, evaluation.candidate
  )


def _audit(
  run: report_run.RunArtifacts, evaluation: results.Evaluation, report_dir: Optional[str] = None
) -> Tuple[Optional[Dict[str, Any]], Optional[report_explain.Explained]]:
  """The masking audit's figures, with Grad-CAM's heat in the lung fields per class, and the
  Grad-CAM examples (their overlays written into `report_dir` when given)."""
  model_uri = run.model.uri if run.model else None
  regions = audit_figures.load_regions(model_uri)
  explained = report_explain.explain_test_split(
    model_uri, run.examples.uri if run.examples else None, regions, report_dir
  )
  figures = audit_figures.audit_json(
    evaluation.metrics.get(results.OVERALL, {}), evaluation.checks, evaluation.candidate, regions
  )
  if figures is not None:
    figures['heat_in_lungs'] = explained.heat_in_lungs() if explained else None
    figures['gradcam_images'] = explained.images if explained else 0
  return figures, explained


def report_json(
  output_dir: str,
  run_id: Optional[str] = None,
  connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
) -> Dict[str, Any]:
  """The figures of the run's report as one JSON-ready dict (see the module docstring)."""
  run = report_run.find_run_artifacts(output_dir, run_id, connection_config)
  evaluation = results.load_evaluation(run.evaluation.uri)
  report = evaluation.report
  checks = [
    {
      'name': report_format.check_name(c),
      'metric': c.metric.name,
      'judged_on': c.kind if c.kind == 'change' else ('lower95' if c.on_lower_bound else 'point'),
      'threshold': c.threshold,
      'value': c.value,
      'ci': list(c.ci) if c.ci else None,
      'images': c.images,
      'passed': c.passed,
      'text': report_gate.describe(c),
    }
    for c in evaluation.checks
  ]
  classes = {}
  for name, figures in zip(report.class_names, report.per_class):
    classes[name] = {}
    for proportion in report_metrics.PROPORTIONS:
      classes[name].update(report_format.proportion_json(proportion, getattr(figures, proportion)))
    classes[name].update(f1=figures.f1, support=int(figures.support))
  return {
    'run_id': run.run_id,
    'blessed': bool(run.blessed()),
    'pushed_to': run.pushed_to(),
    'checks': checks,
    'images': int(report.accuracy.trials),
    **report_format.proportion_json('accuracy', report.accuracy),
    'classes': classes,
    'calibration': report_calibration.calibration_json(
      training_report.read_calibration(run.model_run.uri if run.model_run else None),
      evaluation.metrics.get(results.OVERALL, {}),
      evaluation.candidate,
    ),
    'operating_point': report_operating_point.operating_point_json(
      _run_operating_point(run, evaluation)
    ),
    'confounding': run.confounding(),
    'audit': _audit(run, evaluation)[0],
    'ood': ood.read(run.model_run.uri if run.model_run else None),
    'data': report_data.data_json(_ingest_report_uri(run)),
    'drift': report_drift.drift_json(run.drift()),
  }


def render_report(
  output_dir: str,
  run_id: Optional[str] = None,
  connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
) -> ReportFiles:
  """Writes OUTPUT/reports/<run id>/report.md and report.html for `run_id` (default: the latest
  evaluated run); returns their paths. `connection_config`: a metadata store other than
  OUTPUT/metadata.sqlite."""
  run = report_run.find_run_artifacts(output_dir, run_id, connection_config)
  paths = layout(output_dir)
  report_dir = paths.report_dir(run.run_id)
  os.makedirs(report_dir, exist_ok=True)
  logging.info('Writing the report of run %s to %s', run.run_id, report_dir)
  text = '\n'.join(_markdown(run, paths.root, report_dir))
  path = os.path.join(report_dir, REPORT_FILE)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(text)
  return ReportFiles(path, report_html.write_html(text, _title(run.run_id), report_dir))
