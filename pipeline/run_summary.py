"""What `cxr run` prints at the end: the decision, where the model went, the per-class table."""
from components import labels
from components.evaluation import classification_report
from components.evaluation import results
from pipeline import metadata_queries
from pipeline import report


def summarize(output_dir: str, connection_config=None) -> str:
  """Renders the latest run's report and returns a short text summary of it.

  `connection_config`: the metadata store, when it is not OUTPUT/metadata.sqlite.
  """
  run = report.find_run_artifacts(output_dir, connection_config=connection_config)
  report_path = report.render_report(output_dir, run.run_id, connection_config)
  candidate, _ = results.model_names(results.load_eval_config(run.evaluation.uri))
  matrix = results.load_confusion_matrix(run.evaluation.uri, model_name=candidate)
  table = report.classification_report_table(
      classification_report.classification_report(matrix, labels.CLASS_NAMES))
  blessed = run.blessing is not None and metadata_queries.custom_property(run.blessing, 'blessed')
  pushed = run.pushed_model is not None and metadata_queries.custom_property(run.pushed_model, 'pushed')
  if pushed:
    decision = ('Model BLESSED and pushed to '
                f'{metadata_queries.custom_property(run.pushed_model, "pushed_destination")}')
  else:
    decision = f'Model {"BLESSED" if blessed else "NOT BLESSED"}: nothing pushed this run'
  return '\n'.join([f'Run {run.run_id}', decision, '', 'Test split (argmax):'] + table
                   + ['', f'Full report: {report_path}'])
