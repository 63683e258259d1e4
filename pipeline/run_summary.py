"""What `cxr run` prints at the end: the decision and why, where the model went, the per-class
table."""

from components.evaluation import results
from pipeline import report
from pipeline import report_gate
from pipeline import report_metrics
from pipeline import report_run


def summarize(output_dir: str, connection_config=None) -> str:
  """Renders the latest run's report and returns a short text summary of it.

  `connection_config`: the metadata store, when it is not OUTPUT/metadata.sqlite.
  """
  run = report_run.find_run_artifacts(output_dir, connection_config=connection_config)
  files = report.render_report(output_dir, run.run_id, connection_config)
  evaluation = results.load_evaluation(run.evaluation.uri)
  pushed = run.pushed_to()
  if pushed:
    decision = f'Model BLESSED and pushed to {pushed}'
  else:
    decision = f'Model {"BLESSED" if run.blessed() else "NOT BLESSED"}: nothing pushed this run'
  return '\n'.join(
    [f'Run {run.run_id}', decision]
    + [f'  {report_gate.describe(c)}' for c in evaluation.checks]
    + ['', 'Test split (argmax, 95% Wilson intervals):']
    + report_metrics.classification_report_table(evaluation.report)
    + ['', f'Full report: {files.markdown}', f'As one HTML page: {files.html}']
  )
