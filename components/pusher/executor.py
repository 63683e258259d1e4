"""Executor of AtomicPusher: TFX's Pusher with an atomic, never-colliding filesystem push."""

import logging
from typing import Any, Dict, List

from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.pusher import versioned_dir


class Executor(tfx_pusher_executor.Executor):
  """Pushes a blessed model to `base_directory/<version>/` through versioned_dir.publish.

  Blessing checks and the `pushed_model` artifact's custom properties (`pushed`,
  `pushed_destination`, `pushed_version`) are TFX's. Unlike TFX's executor it does not copy the
  model a second time into the `pushed_model` artifact folder: `pushed_destination` names the
  published copy and the Trainer's artifact keeps the original.

  Whether a blessed model is already served is read from the serving folder, not from ML
  Metadata: a blessing says nothing about a push that failed or was killed. When the newest
  version holds this model (a re-run, or a run killed after its push), the pushed_model names
  that version and nothing is copied; otherwise the model is published as a new version.
  """

  def Do(
    self,
    input_dict: Dict[str, List[types.Artifact]],
    output_dict: Dict[str, List[types.Artifact]],
    exec_properties: Dict[str, Any],
  ) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    pushed_model = artifact_utils.get_single_instance(
      output_dict[standard_component_specs.PUSHED_MODEL_KEY]
    )
    push_destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
      exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], push_destination
    )
    if push_destination.WhichOneof('destination') != 'filesystem':
      raise NotImplementedError(
        f'AtomicPusher pushes to a filesystem destination only, got {push_destination}'
      )
    base_directory = push_destination.filesystem.base_directory
    versioned_dir.remove_stale_temp_dirs(base_directory)
    if not self.CheckBlessing(input_dict):
      logging.info('Model not blessed: nothing pushed.')
      self._MarkNotPushed(pushed_model)
      return
    model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
    version, serving_path = versioned_dir.publish(
      self.GetModelPath(input_dict),
      base_directory,
      record={'model_id': model.id, 'model_uri': model.uri},
    )
    self._MarkPushed(pushed_model, pushed_destination=serving_path, pushed_version=str(version))
