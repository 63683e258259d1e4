"""Compiles the pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines (a PipelineJob JSON).

`cxr compile-kfp` writes the spec; submit it with the KFP SDK or `gcloud ai` (docs/scaling_out.md).
Every component runs in one container image that holds TFX and this project: build it from
docker/pipeline.Dockerfile (commands in docs/scaling_out.md), push it to a registry the cluster can
pull from, and pass it as `--image`. The image installs the project in CONTAINER_PROJECT_DIR, so
the schema is read there.

Differences from the local runners:
- paths are remote: data and output on gs:// (the pipeline root); KFP keeps its own ML Metadata;
- the serving folder must be a filesystem path inside the containers (the pusher renames folders
  atomically): on Vertex, Cloud Storage is mounted at /gcs/<bucket>/, which is the default;
- the Trainer may run on several machines, as a Vertex AI custom job (pipeline.vertex_training);
- caching works as locally although a recurring run reuses one spec for new data: the ingestion
  step, a FileBasedExampleGen, gets TFX's `preCacheCheck` hook, which Vertex AI Pipelines runs in
  the container before its cache lookup to fingerprint the input files
  (components/ingestion/cache_key.py).
"""

import json
import logging
import os
from typing import Any, Dict, Optional

from tfx import v1 as tfx
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from pipeline import beam_args
from pipeline import configs
from pipeline import run_options
from pipeline.output_layout import OutputLayout
from pipeline.run_options import RunOptions
from pipeline.vertex_training import VertexTraining

# The local tag of `docker build -f docker/pipeline.Dockerfile -t cxr-tfx-pipeline:0.1.0 .`
DEFAULT_IMAGE = 'cxr-tfx-pipeline:0.1.0'
CONTAINER_PROJECT_DIR = '/pipeline'  # WORKDIR of the image; holds schemas/


def default_serving_dir(output_dir: str) -> str:
  """gs://bucket/path -> /gcs/bucket/path/serving (Vertex's Cloud Storage mount)."""
  if not output_dir.startswith('gs://'):
    raise ValueError(f'Kubeflow/Vertex output must be a gs:// folder, got {output_dir!r}')
  return '/gcs/' + OutputLayout(output_dir[len('gs://') :].rstrip('/')).serving_dir


def build(
  options: RunOptions,
  serving_dir: str,
  project_dir: str = CONTAINER_PROJECT_DIR,
  trainer_vertex_config: Optional[Dict[str, Any]] = None,
) -> tfx.dsl.Pipeline:
  """The pipeline for `options` with container paths; nothing is read from this machine.
  `trainer_vertex_config`: VertexTraining.custom_config, to train on several machines."""
  for name, path in (('data', options.data_root), ('output', options.output_dir)):
    if '://' not in path:
      raise ValueError(
        f'Kubeflow/Vertex components cannot read the local {name} folder {path!r}: use a gs:// path'
      )
  if '://' in serving_dir:
    raise ValueError(
      f'The serving folder must be a path inside the containers (e.g. /gcs/bucket/'
      f'serving on Vertex), got {serving_dir!r}'
    )
  paths = OutputLayout(options.output_dir.rstrip('/'))
  steps_beam_args, step_beam_args = beam_args.by_step(
    options.beam_pipeline_args,
    configs.direct_beam_args(project_dir),
    options.data_root,
    paths.pipeline_root,
    local_files=False,
  )
  return run_options.build_pipeline(
    options,
    pipeline_root=paths.pipeline_root,
    data_root=options.data_root,
    schema_path=os.path.join(project_dir, 'schemas', 'schema.pbtxt'),
    serving_model_dir=serving_dir,
    drift_reference_dir=paths.drift_reference_dir,
    beam_pipeline_args=steps_beam_args,
    step_beam_args=step_beam_args,
    trainer_vertex_config=trainer_vertex_config,
  )


def compile_pipeline(
  options: RunOptions,
  output_file: str,
  image: str = DEFAULT_IMAGE,
  serving_dir: Optional[str] = None,
  project_dir: str = CONTAINER_PROJECT_DIR,
  training: VertexTraining = VertexTraining(),
) -> Dict[str, Any]:
  """Writes the PipelineJob JSON of the pipeline to `output_file` and returns it; `training`
  says on how many machines the Trainer runs (pipeline.vertex_training)."""
  serving_dir = serving_dir or default_serving_dir(options.output_dir)
  runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
    config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=image),
    output_dir=os.path.dirname(os.path.abspath(output_file)),
    output_filename=os.path.basename(output_file),
  )
  job = runner.run(
    build(options, serving_dir, project_dir, training.custom_config(image)), write_out=False
  )
  tasks = job['pipelineSpec']['root']['dag']['tasks']
  os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
  with open(output_file, 'w', encoding='utf-8') as f:
    json.dump(job, f, indent=2, sort_keys=True)
  logging.info(
    'Wrote the Kubeflow v2 pipeline spec (%d steps, image %s) to %s', len(tasks), image, output_file
  )
  return job
