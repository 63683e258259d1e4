"""The component graph: ingest -> validate, drift gate -> Transform -> Trainer -> Evaluator ->
Pusher.

Built from arguments only; paths, metadata and the orchestrator belong to the runner modules.
"""

from typing import Any, Dict, List, Optional

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.proto import transform_pb2

from components.drift.component import DriftCheck
from components.drift.component import DriftGate
from components.ingestion.component import ImageFolderExampleGen
from components.ingestion.options import EVAL
from components.ingestion.options import TEST
from components.ingestion.options import TRAIN
from components.pusher.component import AtomicPusher

# Node ids: the keys of each component's executions in ML Metadata and of the KFP tasks.
INGESTION = 'ImageFolderExampleGen'
TRAINER, EVALUATOR, PUSHER = 'Trainer', 'Evaluator', 'AtomicPusher'
RESOLVER = 'latest_blessed_model_resolver'
DRIFT_CHECK, DRIFT_GATE = 'DriftCheck', 'DriftGate'
VALIDATOR, TRANSFORM = 'ExampleValidator', 'Transform'


def create_pipeline(
  pipeline_name: str,
  pipeline_root: str,
  data_root: str,
  ingest_config: Dict[str, Any],
  schema_path: str,
  preprocessing_fn: str,
  transform_config: Dict[str, Any],
  run_fn: str,
  trainer_config: Dict[str, Any],
  eval_config: tfma.EvalConfig,
  serving_model_dir: str,
  drift_config: Dict[str, Any],
  drift_reference_dir: str,
  warm_start: bool = False,
  enable_cache: bool = True,
  metadata_connection_config: Optional[Any] = None,
  beam_pipeline_args: Optional[List[str]] = None,
  step_beam_args: Optional[Dict[str, List[str]]] = None,
  trainer_vertex_config: Optional[Dict[str, Any]] = None,
) -> tfx.dsl.Pipeline:
  """Returns the TFX pipeline.

  Args:
    ingest_config: parameters of ImageFolderExampleGen (IngestOptions.to_config()).
    transform_config: `custom_config` of the Transform (the ImageSpec's image_size, image_channels).
    trainer_config: `custom_config` of the Trainer (ImageSpec keys, preset, overrides).
    drift_config: parameters of DriftCheck (DriftOptions.to_config()).
    drift_reference_dir: the accepted spans' statistics the drift check compares with
      (components.drift.reference).
    warm_start: start training from the last blessed model's weights.
    step_beam_args: more Beam arguments of single steps, by node id (pipeline.beam_args.by_step),
      after `beam_pipeline_args`: a later flag wins.
    trainer_vertex_config: custom_config keys of TFX's Vertex AI Training extension
      (pipeline.vertex_training): the Trainer then runs as a Vertex AI custom job.
  """
  example_gen = ImageFolderExampleGen(input_base=data_root, **ingest_config).with_id(INGESTION)
  examples = example_gen.outputs['examples']

  statistics_gen = tfx.components.StatisticsGen(examples=examples)
  schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
  example_validator = tfx.components.ExampleValidator(
    statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema']
  ).with_id(VALIDATOR)

  drift_check = DriftCheck(
    statistics=statistics_gen.outputs['statistics'],
    schema=schema_gen.outputs['schema'],
    reference_dir=drift_reference_dir,
    **drift_config,
  ).with_id(DRIFT_CHECK)
  drift_gate = DriftGate(report=drift_check.outputs['report']).with_id(DRIFT_GATE)

  transform = tfx.components.Transform(
    examples=examples,
    schema=schema_gen.outputs['schema'],
    preprocessing_fn=preprocessing_fn,
    splits_config=transform_pb2.SplitsConfig(analyze=[TRAIN], transform=[TRAIN, EVAL]),
    custom_config=transform_config,
  ).with_id(TRANSFORM)
  transform.add_upstream_node(drift_gate)  # a drifted span stops before Transform and Trainer

  model_resolver = tfx.dsl.Resolver(
    strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
    model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
    model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id(RESOLVER)

  trainer_class = (
    tfx.extensions.google_cloud_ai_platform.Trainer
    if trainer_vertex_config
    else tfx.components.Trainer
  )
  trainer = trainer_class(
    run_fn=run_fn,
    examples=transform.outputs['transformed_examples'],
    transform_graph=transform.outputs['transform_graph'],
    schema=schema_gen.outputs['schema'],
    base_model=model_resolver.outputs['model'] if warm_start else None,
    train_args=tfx.proto.TrainArgs(splits=[TRAIN]),
    eval_args=tfx.proto.EvalArgs(splits=[EVAL]),
    custom_config={**trainer_config, **(trainer_vertex_config or {})},
  ).with_id(TRAINER)

  evaluator = tfx.components.Evaluator(
    examples=examples,
    example_splits=[TEST],
    model=trainer.outputs['model'],
    baseline_model=model_resolver.outputs['model'],
    eval_config=eval_config,
  ).with_id(EVALUATOR)

  pusher = AtomicPusher(
    model=trainer.outputs['model'],
    model_blessing=evaluator.outputs['blessing'],
    push_destination=tfx.proto.PushDestination(
      filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)
    ),
    # What the model card of each pushed version is written from.
    evaluation=evaluator.outputs['evaluation'],
    examples=examples,
    ingest_report=example_gen.outputs['report'],
    model_run=trainer.outputs['model_run'],
  ).with_id(PUSHER)

  components = [
    example_gen,
    statistics_gen,
    schema_gen,
    example_validator,
    drift_check,
    drift_gate,
    transform,
    model_resolver,
    trainer,
    evaluator,
    pusher,
  ]
  for component in components:
    if component.id in (step_beam_args or {}):
      component.with_beam_pipeline_args(step_beam_args[component.id])
  return tfx.dsl.Pipeline(
    pipeline_name=pipeline_name,
    pipeline_root=pipeline_root,
    components=components,
    enable_cache=enable_cache,
    metadata_connection_config=metadata_connection_config,
    beam_pipeline_args=beam_pipeline_args,
  )
