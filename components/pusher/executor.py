"""Executor of AtomicPusher: TFX's Pusher with an atomic, never-colliding filesystem push."""
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.pusher import versioned_dir

_CURRENT = evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY
_BASELINE = evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY


class Executor(tfx_pusher_executor.Executor):
  """Pushes a blessed model to `base_directory/<version>/` through versioned_dir.publish.

  Blessing checks and the `pushed_model` artifact's custom properties (`pushed`,
  `pushed_destination`, `pushed_version`) are TFX's. Unlike TFX's executor it does not copy the
  model a second time into the `pushed_model` artifact folder: `pushed_destination` names the
  published copy and the Trainer's artifact keeps the original.
  """

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    pushed_model = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      logging.info('Model not blessed: nothing pushed.')
      self._MarkNotPushed(pushed_model)
      return
    blessing = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_BLESSING_KEY])
    if _is_its_own_baseline(blessing):
      logging.info('Model %s was blessed against itself (the last blessed model, already pushed): '
                   'nothing pushed.', blessing.get_int_custom_property(_CURRENT))
      self._MarkNotPushed(pushed_model)
      return
    push_destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], push_destination)
    if push_destination.WhichOneof('destination') != 'filesystem':
      raise NotImplementedError(
          f'AtomicPusher pushes to a filesystem destination only, got {push_destination}')
    version, serving_path = versioned_dir.publish(
        self.GetModelPath(input_dict), push_destination.filesystem.base_directory)
    self._MarkPushed(pushed_model, pushed_destination=serving_path, pushed_version=str(version))


def _is_its_own_baseline(blessing: types.Artifact) -> bool:
  """True when the Evaluator judged the last blessed model against itself (a re-run, no new model)."""
  if not blessing.has_custom_property(_BASELINE):
    return False
  return blessing.get_int_custom_property(_CURRENT) == blessing.get_int_custom_property(_BASELINE)
