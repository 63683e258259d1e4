"""AtomicPusher: blessed models only, versioned folders, atomic publication, crash safety."""
import os
import subprocess
import sys
import textwrap

import pytest
from tfx import v1 as tfx
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.pusher import component
from components.pusher import executor as pusher_executor
from components.pusher import versioned_dir

MODEL_FILES = {'saved_model.pb': b'graph', 'fingerprint.pb': b'fp',
               'variables/variables.index': b'index',
               'variables/variables.data-00000-of-00001': b'weights' * 1000,
               'assets/classes.txt': b'COVID\nNORMAL\nVIRAL PNEUMONIA\n'}


def _write_model(model_dir, tag=b''):
  for name, content in MODEL_FILES.items():
    path = os.path.join(model_dir, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(content + tag)
  return model_dir


def _read_tree(folder):
  tree = {}
  for parent, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(parent, name)
      with open(path, 'rb') as f:
        tree[os.path.relpath(path, folder)] = f.read()
  return tree


def _push(tmp_path, model_uri, blessed, serving_dir):
  model = standard_artifacts.Model()
  model.uri = model_uri
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / 'blessing')
  blessing.set_int_custom_property('blessed', int(blessed))
  pushed_model = standard_artifacts.PushedModel()
  pushed_model.uri = str(tmp_path / 'pushed_model')
  pusher_executor.Executor().Do(
      {'model': [model], 'model_blessing': [blessing]}, {'pushed_model': [pushed_model]},
      {'push_destination': proto_utils.proto_to_json(pusher_pb2.PushDestination(
          filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)))})
  return pushed_model


def test_blessed_models_are_pushed_to_new_versions_and_old_versions_kept(tmp_path):
  serving_dir = str(tmp_path / 'serving')
  first = _write_model(str(tmp_path / 'model1' / 'Format-Serving'), b'1')
  second = _write_model(str(tmp_path / 'model2' / 'Format-Serving'), b'2')
  pushed = [_push(tmp_path, os.path.dirname(first), True, serving_dir),
            _push(tmp_path, os.path.dirname(second), True, serving_dir)]
  found = versioned_dir.versions(serving_dir)
  assert len(found) == 2 and found[0] < found[1]
  for artifact, version, source in zip(pushed, found, (first, second)):
    assert artifact.get_int_custom_property('pushed') == 1
    assert artifact.get_string_custom_property('pushed_version') == str(version)
    destination = artifact.get_string_custom_property('pushed_destination')
    assert destination == os.path.join(serving_dir, str(version))
    assert _read_tree(destination) == _read_tree(source)
  assert versioned_dir.latest_version_dir(serving_dir) == os.path.join(serving_dir, str(found[1]))
  assert sorted(os.listdir(serving_dir)) == sorted([str(v) for v in found] + ['.lock'])


def test_unblessed_model_is_not_pushed(tmp_path):
  serving_dir = str(tmp_path / 'serving')
  model_dir = _write_model(str(tmp_path / 'model' / 'Format-Serving'))
  pushed = _push(tmp_path, os.path.dirname(model_dir), False, serving_dir)
  assert pushed.get_int_custom_property('pushed') == 0
  assert versioned_dir.versions(serving_dir) == []


def test_versions_never_collide_within_one_second(tmp_path):
  model_dir = _write_model(str(tmp_path / 'model'))
  serving_dir = str(tmp_path / 'serving')
  published = [versioned_dir.publish(model_dir, serving_dir)[0] for _ in range(3)]
  assert published == sorted(set(published)) == versioned_dir.versions(serving_dir)


def test_copy_failure_midway_leaves_previous_version_intact(tmp_path, monkeypatch):
  serving_dir = str(tmp_path / 'serving')
  version, path = versioned_dir.publish(_write_model(str(tmp_path / 'old'), b'old'), serving_dir)
  before = _read_tree(path)
  copied = []

  def failing_copy(src, dst):
    if len(copied) == 2:
      raise OSError(28, 'No space left on device')
    copied.append(src)
    return versioned_dir.shutil.copyfile(src, dst)

  monkeypatch.setattr(versioned_dir, '_copy_file', failing_copy)
  with pytest.raises(Exception, match='No space left on device'):
    versioned_dir.publish(_write_model(str(tmp_path / 'new'), b'new'), serving_dir)
  assert versioned_dir.versions(serving_dir) == [version]
  assert _read_tree(path) == before
  assert not [n for n in os.listdir(serving_dir) if n.startswith(versioned_dir.TEMP_PREFIX)]


def test_killed_push_shows_no_partial_version_and_next_push_cleans_up(tmp_path):
  serving_dir = str(tmp_path / 'serving')
  old_version, old_path = versioned_dir.publish(
      _write_model(str(tmp_path / 'old'), b'old'), serving_dir)
  before = _read_tree(old_path)
  new_model = _write_model(str(tmp_path / 'new'), b'new')
  # A process killed after copying two files (os._exit: no cleanup code runs).
  script = textwrap.dedent(f"""
      import os, shutil
      from components.pusher import versioned_dir
      copied = []
      def dying_copy(src, dst):
        if len(copied) == 2:
          os._exit(9)
        copied.append(shutil.copyfile(src, dst))
        return dst
      versioned_dir._copy_file = dying_copy
      versioned_dir.publish({new_model!r}, {serving_dir!r})
  """)
  assert subprocess.run([sys.executable, '-c', script], check=False).returncode == 9
  leftovers = [n for n in os.listdir(serving_dir) if n.startswith(versioned_dir.TEMP_PREFIX)]
  assert len(leftovers) == 1 and os.listdir(os.path.join(serving_dir, leftovers[0]))
  assert versioned_dir.versions(serving_dir) == [old_version]
  assert versioned_dir.latest_version_dir(serving_dir) == old_path
  assert _read_tree(old_path) == before

  new_version, new_path = versioned_dir.publish(new_model, serving_dir)
  assert versioned_dir.versions(serving_dir) == [old_version, new_version]
  assert not [n for n in os.listdir(serving_dir) if n.startswith(versioned_dir.TEMP_PREFIX)]
  assert _read_tree(new_path) == _read_tree(new_model)


def test_atomic_pusher_component_requires_a_filesystem_destination():
  model = tfx.dsl.Channel(type=standard_artifacts.Model)
  blessing = tfx.dsl.Channel(type=standard_artifacts.ModelBlessing)
  with pytest.raises(ValueError, match='base_directory'):
    component.AtomicPusher(model=model, model_blessing=blessing,
                           push_destination=pusher_pb2.PushDestination())
  pusher = component.AtomicPusher(
      model=model, model_blessing=blessing, push_destination=pusher_pb2.PushDestination(
          filesystem=pusher_pb2.PushDestination.Filesystem(base_directory='/serving')))
  assert pusher.executor_spec.executor_class is pusher_executor.Executor
  assert pusher.outputs['pushed_model'].type == standard_artifacts.PushedModel
