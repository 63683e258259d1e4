"""AtomicPusher: blessed models only, versioned folders, atomic publication, crash safety."""

import json
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

MODEL_FILES = {
  'saved_model.pb': b'graph',
  'fingerprint.pb': b'fp',
  'variables/variables.index': b'index',
  'variables/variables.data-00000-of-00001': b'weights' * 1000,
  'assets/classes.txt': b'COVID\nNORMAL\nVIRAL PNEUMONIA\n',
}


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


def _push(tmp_path, model_uri, blessed, serving_dir, model_id=0, baseline_id=None):
  """Runs the executor as TFX would; baseline_id: the Evaluator's baseline model (None: none)."""
  model = standard_artifacts.Model()
  model.uri = model_uri
  model.id = model_id
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / 'blessing')
  blessing.set_int_custom_property('blessed', int(blessed))
  blessing.set_int_custom_property('current_model_id', model_id)
  if baseline_id is not None:
    blessing.set_int_custom_property('baseline_model_id', baseline_id)
  pushed_model = standard_artifacts.PushedModel()
  pushed_model.uri = str(tmp_path / 'pushed_model')
  pusher_executor.Executor().Do(
    {'model': [model], 'model_blessing': [blessing]},
    {'pushed_model': [pushed_model]},
    {
      'push_destination': proto_utils.proto_to_json(
        pusher_pb2.PushDestination(
          filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)
        )
      )
    },
  )
  return pushed_model


def test_blessed_models_are_pushed_to_new_versions_and_old_versions_kept(tmp_path):
  serving_dir = str(tmp_path / 'serving')
  first = _write_model(str(tmp_path / 'model1' / 'Format-Serving'), b'1')
  second = _write_model(str(tmp_path / 'model2' / 'Format-Serving'), b'2')
  pushed = [
    _push(tmp_path, os.path.dirname(first), True, serving_dir),
    _push(tmp_path, os.path.dirname(second), True, serving_dir),
  ]
  found = versioned_dir.versions(serving_dir)
  assert len(found) == 2 and found[0] < found[1]
  for artifact, version, source in zip(pushed, found, (first, second)):
    assert artifact.get_int_custom_property('pushed') == 1
    assert artifact.get_string_custom_property('pushed_version') == str(version)
    destination = artifact.get_string_custom_property('pushed_destination')
    assert destination == os.path.join(serving_dir, str(version))
    published = _read_tree(destination)
    assert json.loads(published.pop(versioned_dir.PUSH_RECORD))['model_uri'] == os.path.dirname(
      source
    )
    assert published == _read_tree(source)
  assert versioned_dir.latest_version_dir(serving_dir) == os.path.join(serving_dir, str(found[1]))
  assert sorted(os.listdir(serving_dir)) == sorted([str(v) for v in found] + ['.lock'])


def _temp_dirs(serving_dir):
  return [n for n in os.listdir(serving_dir) if n.startswith(versioned_dir.TEMP_PREFIX)]


def _half_copied_push(serving_dir, version):
  """What a push killed mid-copy leaves: a `.tmp-<version>` folder with part of the model."""
  os.makedirs(os.path.join(serving_dir, f'{versioned_dir.TEMP_PREFIX}{version}', 'variables'))


def test_blessed_model_whose_push_was_killed_is_pushed_by_the_rerun(tmp_path):
  # The killed run's Evaluator blessed model 7; the re-run's Evaluator judges model 7 against
  # itself (the latest blessed model) and blesses it again. The push must happen now.
  serving_dir = str(tmp_path / 'serving')
  model_dir = _write_model(str(tmp_path / 'model' / 'Format-Serving'))
  _half_copied_push(serving_dir, 1767225600)
  pushed = _push(tmp_path, os.path.dirname(model_dir), True, serving_dir, model_id=7, baseline_id=7)
  [version] = versioned_dir.versions(serving_dir)
  assert pushed.get_int_custom_property('pushed') == 1
  assert pushed.get_string_custom_property('pushed_version') == str(version)
  assert _temp_dirs(serving_dir) == []
  published = _read_tree(os.path.join(serving_dir, str(version)))
  assert json.loads(published.pop(versioned_dir.PUSH_RECORD)) == {
    'model_id': 7,
    'model_uri': os.path.dirname(model_dir),
  }
  assert published == _read_tree(model_dir)


def test_push_killed_after_its_rename_is_not_repeated_by_the_rerun(tmp_path):
  # The version folder is in place but ML Metadata never heard of it: the re-run (model 7
  # blessed again, against itself) finds it and records that version instead of copying again.
  serving_dir = str(tmp_path / 'serving')
  model_uri = os.path.dirname(_write_model(str(tmp_path / 'model' / 'Format-Serving')))
  first = _push(tmp_path, model_uri, True, serving_dir, model_id=7)
  [version] = versioned_dir.versions(serving_dir)
  rerun = _push(tmp_path, model_uri, True, serving_dir, model_id=7, baseline_id=7)
  assert versioned_dir.versions(serving_dir) == [version]
  for pushed in (first, rerun):
    assert pushed.get_int_custom_property('pushed') == 1
    assert pushed.get_string_custom_property('pushed_version') == str(version)
    assert pushed.get_string_custom_property('pushed_destination') == os.path.join(
      serving_dir, str(version)
    )


def test_model_held_only_by_an_older_version_is_published_again_as_the_newest(tmp_path):
  serving_dir = str(tmp_path / 'serving')
  first_uri = os.path.dirname(_write_model(str(tmp_path / 'm1' / 'Format-Serving'), b'1'))
  second_uri = os.path.dirname(_write_model(str(tmp_path / 'm2' / 'Format-Serving'), b'2'))
  for uri, model_id in ((first_uri, 1), (second_uri, 2), (first_uri, 1)):
    last = _push(tmp_path, uri, True, serving_dir, model_id=model_id)
  found = versioned_dir.versions(serving_dir)
  assert len(found) == 3 and found == sorted(found)
  assert last.get_string_custom_property('pushed_version') == str(found[-1])
  assert versioned_dir.push_record(os.path.join(serving_dir, str(found[-1])))['model_id'] == 1


def test_unblessed_run_removes_what_a_killed_push_left(tmp_path):
  serving_dir = str(tmp_path / 'serving')
  _half_copied_push(serving_dir, 1767225600)
  model_dir = _write_model(str(tmp_path / 'model' / 'Format-Serving'))
  assert (
    _push(tmp_path, os.path.dirname(model_dir), False, serving_dir).get_int_custom_property(
      'pushed'
    )
    == 0
  )
  assert os.listdir(serving_dir) == ['.lock']


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
    _write_model(str(tmp_path / 'old'), b'old'), serving_dir
  )
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
    component.AtomicPusher(
      model=model, model_blessing=blessing, push_destination=pusher_pb2.PushDestination()
    )
  pusher = component.AtomicPusher(
    model=model,
    model_blessing=blessing,
    push_destination=pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory='/serving')
    ),
  )
  assert pusher.executor_spec.executor_class is pusher_executor.Executor
  assert pusher.outputs['pushed_model'].type == standard_artifacts.PushedModel


def test_extra_files_are_published_with_the_version_and_never_replace_the_model(tmp_path):
  serving_dir = str(tmp_path / 'serving')
  model_dir = _write_model(str(tmp_path / 'model'))
  version, path = versioned_dir.publish(
    model_dir, serving_dir, extra_files=lambda v: {'card.md': f'version {v}'.encode()}
  )
  with open(os.path.join(path, 'card.md'), 'rb') as f:
    assert f.read() == f'version {version}'.encode()
  with pytest.raises(FileExistsError):
    versioned_dir.publish(model_dir, serving_dir, extra_files=lambda v: {'saved_model.pb': b'x'})
  assert versioned_dir.versions(serving_dir) == [version]
  assert _temp_dirs(serving_dir) == []
