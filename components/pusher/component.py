"""AtomicPusher: TFX's Pusher with the atomic versioned executor and the model card's inputs."""

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter

from components.ingestion.component import IngestReport
from components.pusher import executor


class AtomicPusherSpec(standard_component_specs.PusherSpec):
  """TFX's PusherSpec plus the optional inputs the model card is written from: the Evaluator's
  evaluation, the ingested examples and their report (summary.json), the Trainer's model_run."""

  INPUTS = {
    **standard_component_specs.PusherSpec.INPUTS,
    standard_component_specs.EVALUATION_KEY: ChannelParameter(
      type=standard_artifacts.ModelEvaluation, optional=True
    ),
    standard_component_specs.EXAMPLES_KEY: ChannelParameter(
      type=standard_artifacts.Examples, optional=True
    ),
    executor.INGEST_REPORT_KEY: ChannelParameter(type=IngestReport, optional=True),
    standard_component_specs.MODEL_RUN_KEY: ChannelParameter(
      type=standard_artifacts.ModelRun, optional=True
    ),
  }


class AtomicPusher(base_component.BaseComponent):
  """Pushes the model to `push_destination.filesystem.base_directory/<version>/` if blessed.

  TFX's Pusher inputs (`model`, `model_blessing`) and output (`pushed_model`); see
  components.pusher.versioned_dir for the folder layout and its guarantees. With `evaluation`
  the version folder also holds the model's card (components.pusher.model_card), built from
  `evaluation` and whichever of `examples`, `ingest_report` and `model_run` are given.
  TFX's Pusher builds its own PusherSpec in its constructor, so this component declares its
  spec and derives from BaseComponent as TFX's own components do.
  """

  SPEC_CLASS = AtomicPusherSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(
    self,
    model: types.BaseChannel,
    model_blessing: types.BaseChannel,
    push_destination: pusher_pb2.PushDestination,
    evaluation: Optional[types.BaseChannel] = None,
    examples: Optional[types.BaseChannel] = None,
    ingest_report: Optional[types.BaseChannel] = None,
    model_run: Optional[types.BaseChannel] = None,
  ):
    if not push_destination.filesystem.base_directory:
      raise ValueError('AtomicPusher needs push_destination.filesystem.base_directory')
    super().__init__(
      spec=AtomicPusherSpec(
        model=model,
        model_blessing=model_blessing,
        push_destination=push_destination,
        evaluation=evaluation,
        examples=examples,
        ingest_report=ingest_report,
        model_run=model_run,
        pushed_model=types.Channel(type=standard_artifacts.PushedModel),
      )
    )
