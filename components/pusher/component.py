"""AtomicPusher: TFX's Pusher component with the atomic versioned executor."""

from tfx import types
from tfx.components.pusher import component as tfx_pusher_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2

from components.pusher import executor


class AtomicPusher(tfx_pusher_component.Pusher):
  """Pushes the model to `push_destination.filesystem.base_directory/<version>/` if blessed.

  Same inputs and `pushed_model` output as TFX's Pusher; see components.pusher.versioned_dir for
  the folder layout and its guarantees.
  """

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(
    self,
    model: types.BaseChannel,
    model_blessing: types.BaseChannel,
    push_destination: pusher_pb2.PushDestination,
  ):
    if not push_destination.filesystem.base_directory:
      raise ValueError('AtomicPusher needs push_destination.filesystem.base_directory')
    super().__init__(model=model, model_blessing=model_blessing, push_destination=push_destination)
