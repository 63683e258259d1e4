"""Executor of AtomicPusher: TFX's Pusher with an atomic, never-colliding filesystem push."""

import datetime
import functools
import logging
import os
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.pusher import model_card
from components.pusher import versioned_dir

INGEST_REPORT_KEY = 'ingest_report'  # the ingestion's report artifact (summary.json)


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

  With an `evaluation` input, each new version holds the model's card (model_card.CARD_JSON and
  CARD_MARKDOWN), written before the version appears; a version already holding the model is
  left as it is.
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
    card_inputs = _card_inputs(model, input_dict)
    version, serving_path = versioned_dir.publish(
      self.GetModelPath(input_dict),
      base_directory,
      record={'model_id': model.id, 'model_uri': model.uri},
      extra_files=functools.partial(_card_files, card_inputs, base_directory=base_directory)
      if card_inputs
      else None,
    )
    self._MarkPushed(pushed_model, pushed_destination=serving_path, pushed_version=str(version))


def _optional(input_dict: Dict[str, List[types.Artifact]], key: str) -> Optional[types.Artifact]:
  artifacts = input_dict.get(key)
  return artifact_utils.get_single_instance(artifacts) if artifacts else None


def _card_inputs(
  model: types.Artifact, input_dict: Dict[str, List[types.Artifact]]
) -> Optional[model_card.CardInputs]:
  """What the model card is built from; None without an evaluation (no card)."""
  evaluation = _optional(input_dict, standard_component_specs.EVALUATION_KEY)
  if evaluation is None:
    logging.info('No evaluation given: the version gets no model card.')
    return None
  return model_card.CardInputs(
    model=model,
    evaluation=evaluation,
    blessing=_optional(input_dict, standard_component_specs.MODEL_BLESSING_KEY),
    examples=_optional(input_dict, standard_component_specs.EXAMPLES_KEY),
    ingest_report=_optional(input_dict, INGEST_REPORT_KEY),
    model_run=_optional(input_dict, standard_component_specs.MODEL_RUN_KEY),
  )


def _card_files(
  inputs: model_card.CardInputs, version: int, base_directory: str
) -> Dict[str, bytes]:
  card = model_card.build(
    inputs,
    version,
    os.path.join(base_directory, str(version)),
    datetime.datetime.now(datetime.timezone.utc),
  )
  return model_card.card_files(card)
