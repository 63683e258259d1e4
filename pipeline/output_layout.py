"""Where a run writes: one output folder holds the pipeline root, the metadata store and the models."""
import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class OutputLayout:
  """Paths inside an output folder (`cxr run --output DIR`)."""
  root: str

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.root, 'pipeline_root')

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.root, 'metadata.sqlite')

  @property
  def serving_dir(self) -> str:
    """Pushed models, one folder per version: serving/<version>/."""
    return os.path.join(self.root, 'serving')

  @property
  def reports_dir(self) -> str:
    return os.path.join(self.root, 'reports')


def layout(output_dir: str) -> OutputLayout:
  return OutputLayout(os.path.abspath(output_dir))
