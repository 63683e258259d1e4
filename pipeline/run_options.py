"""Everything a user chooses for one pipeline run, with the defaults of pipeline/configs.py."""
import dataclasses
from typing import Any, Dict, List, Optional

from tfx import v1 as tfx

from components.evaluation.eval_config import make_eval_config
from components.evaluation.gate import Gate
from pipeline import configs
from pipeline import pipeline as pipeline_lib


@dataclasses.dataclass
class RunOptions:
  """Options of `cxr run`; the runner turns them into component arguments."""
  data_root: str
  output_dir: str
  # Ingestion.
  span: str = 'latest'
  group_regex: str = ''
  unknown_classes: str = 'error'
  max_bad_fraction: float = configs.MAX_BAD_FRACTION
  max_image_pixels: int = configs.MAX_IMAGE_PIXELS
  # Transform.
  image_size: int = configs.IMAGE_SIZE
  image_channels: int = configs.IMAGE_CHANNELS
  normalization: str = configs.NORMALIZATION
  # Trainer: a preset plus overrides of its hyperparameters (components.hparams).
  preset: str = configs.PRESET
  hparam_overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)
  warm_start: bool = False
  # Evaluator gate (defaults: components.evaluation.gate.Gate).
  min_accuracy: float = Gate.min_accuracy
  min_covid_recall: float = Gate.min_covid_recall
  max_accuracy_drop: float = Gate.max_accuracy_drop
  gate_on: str = Gate.gate_on
  # Orchestration.
  enable_cache: bool = True
  beam_pipeline_args: Optional[List[str]] = None
  metadata_mysql: str = ''      # HOST[:PORT]/DATABASE: MySQL metadata store instead of SQLite
  pipeline_root: str = ''       # artifacts; default OUTPUT/pipeline_root (gs:// for Dataflow)
  lock_wait: float = 0.0        # seconds to wait for another run of the same output folder

  def ingest_options(self) -> Dict[str, Any]:
    return dict(span=self.span, group_regex=self.group_regex, unknown_classes=self.unknown_classes,
                max_bad_fraction=self.max_bad_fraction, max_image_pixels=self.max_image_pixels)

  def transform_config(self) -> Dict[str, Any]:
    return dict(image_size=self.image_size, image_channels=self.image_channels)

  def gate(self) -> Gate:
    return Gate(min_accuracy=self.min_accuracy, min_covid_recall=self.min_covid_recall,
                max_accuracy_drop=self.max_accuracy_drop, gate_on=self.gate_on)

  def trainer_config(self) -> Dict[str, Any]:
    return dict(preset=self.preset, image_size=self.image_size,
                image_channels=self.image_channels, normalization=self.normalization,
                warm_start=self.warm_start, **self.hparam_overrides)


def create_pipeline(options: RunOptions, **placement: Any) -> tfx.dsl.Pipeline:
  """The pipeline with the components `options` choose; `placement` is the runner's part:
  pipeline_root, data_root, input_fingerprint, schema_path, serving_model_dir,
  beam_pipeline_args and optionally metadata_connection_config."""
  return pipeline_lib.create_pipeline(
      pipeline_name=configs.PIPELINE_NAME,
      ingest_options=options.ingest_options(),
      preprocessing_fn=configs.PREPROCESSING_FN,
      transform_config=options.transform_config(),
      run_fn=configs.RUN_FN,
      trainer_config=options.trainer_config(),
      eval_config=make_eval_config(options.gate()),
      warm_start=options.warm_start,
      enable_cache=options.enable_cache,
      **placement)
