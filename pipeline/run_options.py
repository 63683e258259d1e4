"""Everything a user chooses for one pipeline run: each component's settings, composed."""

import dataclasses
from typing import Any, Dict, List, Optional

from tfx import v1 as tfx

from components import audit
from components import hparams
from components.drift.options import DriftOptions
from components.evaluation.eval_config import make_eval_config
from components.evaluation.gate import Gate
from components.image_spec import ImageSpec
from components.ingestion.options import IngestOptions
from pipeline import configs
from pipeline import pipeline as pipeline_lib

# The image_spec keys the Transform reads (normalization is the model's business only).
_TRANSFORM_KEYS = ('image_size', 'image_channels')


@dataclasses.dataclass
class RunOptions:
  """Options of `cxr run`; the runner turns them into component arguments."""

  data_root: str
  output_dir: str
  ingest: IngestOptions = dataclasses.field(default_factory=IngestOptions)
  drift: DriftOptions = dataclasses.field(default_factory=DriftOptions)
  image: ImageSpec = dataclasses.field(default_factory=ImageSpec)
  # Trainer: a preset plus overrides of its hyperparameters (components.hparams).
  preset: str = hparams.DEFAULT_PRESET
  hparam_overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)
  warm_start: bool = False
  audit_regions: audit.Regions = dataclasses.field(default_factory=audit.Regions)
  gate: Gate = dataclasses.field(default_factory=Gate)
  # Orchestration.
  enable_cache: bool = True
  beam_pipeline_args: Optional[List[str]] = None
  metadata_mysql: str = ''  # HOST[:PORT]/DATABASE: MySQL metadata store instead of SQLite
  pipeline_root: str = ''  # artifacts; default OUTPUT/pipeline_root (gs:// for Dataflow)
  lock_wait: float = 0.0  # seconds to wait for another run of the same output folder

  def transform_config(self) -> Dict[str, Any]:
    return {k: v for k, v in self.image.to_config().items() if k in _TRANSFORM_KEYS}

  def trainer_config(self) -> Dict[str, Any]:
    return dict(
      self.image.to_config(),
      **self.audit_regions.to_config(),
      preset=self.preset,
      warm_start=self.warm_start,
      **self.hparam_overrides,
    )


def build_pipeline(options: RunOptions, **placement: Any) -> tfx.dsl.Pipeline:
  """The pipeline with the components `options` choose; `placement` is the runner's part:
  pipeline_root, data_root, schema_path, serving_model_dir, drift_reference_dir,
  beam_pipeline_args and optionally step_beam_args, metadata_connection_config and
  trainer_vertex_config."""
  return pipeline_lib.create_pipeline(
    pipeline_name=configs.PIPELINE_NAME,
    ingest_config=options.ingest.to_config(),
    drift_config=options.drift.to_config(),
    preprocessing_fn=configs.PREPROCESSING_FN,
    transform_config=options.transform_config(),
    run_fn=configs.RUN_FN,
    trainer_config=options.trainer_config(),
    eval_config=make_eval_config(options.gate),
    warm_start=options.warm_start,
    enable_cache=options.enable_cache,
    **placement,
  )
