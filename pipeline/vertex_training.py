"""The Trainer step as a Vertex AI custom job on several machines (Kubeflow v2 / Vertex only).

With `replicas` > 1 the compiled Trainer step uses TFX's Vertex AI Training extension
(tfx.v1.extensions.google_cloud_ai_platform.Trainer): it starts a Vertex AI CustomJob of
`replicas` machines running the pipeline image, one primary replica (TF_CONFIG task `chief`)
and `replicas - 1` workers, each running TFX's Trainer executor; components.trainer sees
TF_CONFIG and trains under MultiWorkerMirroredStrategy, and only the chief's export remains.
With 1 (the default) the Trainer runs in the pipeline step's own container.
"""

import dataclasses
from typing import Any, Dict


@dataclasses.dataclass(frozen=True)
class VertexTraining:
  """How many machines train, where, and on what (`cxr compile-kfp --training-replicas`)."""

  replicas: int = 1
  project: str = ''  # Google Cloud project of the custom job
  region: str = ''  # Vertex AI region, e.g. europe-west4
  machine_type: str = 'n1-standard-8'  # of every replica

  def __post_init__(self):
    if not isinstance(self.replicas, int) or self.replicas < 1:
      raise ValueError(f'--training-replicas must be a whole number >= 1, got {self.replicas!r}')
    if self.replicas > 1 and not (self.project and self.region):
      raise ValueError(
        f'--training-replicas {self.replicas} runs the Trainer as a Vertex AI custom job: '
        'give --vertex-project and --vertex-region'
      )

  def custom_config(self, image: str) -> Dict[str, Any]:
    """The Trainer custom_config keys of the extension (empty for one machine): the job's worker
    pools, the primary replica first, all on `machine_type` and running `image`."""
    if self.replicas == 1:
      return {}
    # TFX loads in seconds: imported here, not when the CLI starts (pipeline.cli imports this).
    from tfx.v1.extensions import google_cloud_ai_platform as vertex_ai

    pools = [
      {
        'machine_spec': {'machine_type': self.machine_type},
        'replica_count': count,
        'container_spec': {'image_uri': image},
      }
      for count in (1, self.replicas - 1)
    ]
    return {
      vertex_ai.ENABLE_VERTEX_KEY: True,
      vertex_ai.VERTEX_REGION_KEY: self.region,
      vertex_ai.TRAINING_ARGS_KEY: {
        'project': self.project,
        'job_spec': {'worker_pool_specs': pools},
      },
    }
