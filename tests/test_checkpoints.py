"""Checkpoints on disk: fall back past corrupt ones, reshard on restore, clear config errors."""
import glob
import logging
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from conftest import REPO_ROOT, subprocess_env
from xlt import checkpoints, partitioning
from xlt.models import TINY
from xlt.optimizers import OptimizerConfig
from xlt.train_state import create_sharded_state, state_shardings

ADAMW = OptimizerConfig(name="adamw")
RULES = partitioning.DEFAULT_RULES
TINY_RUN = ["--gin_file=gin/experiments/demo.gin", "--gin_file=gin/local_tiny.gin"]


def _mesh(data=1, fsdp=-1, model=1, devices=None):
  return partitioning.make_mesh(partitioning.MeshConfig(data=data, fsdp=fsdp, model=model), devices)


def _state(config=TINY, optimizer=ADAMW, mesh=None, seed=0):
  tx, _ = optimizer.build()
  mesh = mesh or _mesh(devices=jax.devices()[:1])
  return create_sharded_state(config, tx, mesh, RULES, seed)


def _shifted(state, delta: float):
  """The same state with every parameter moved by `delta` (to tell saved steps apart)."""
  return state.replace(params=jax.tree.map(lambda x: x + delta, state.params))


def _save(directory, steps_and_states, config=TINY):
  ckpt = checkpoints.Checkpointer(str(directory), checkpoints.CheckpointConfig(save_every_steps=1))
  try:
    for step, state in steps_and_states:
      assert ckpt.save(step, state, {"batches_consumed": step}, config.to_dict())
    ckpt.wait()
  finally:
    ckpt.close()


def _assert_trees_equal(actual, expected):
  leaves_a, leaves_e = jax.tree.leaves(actual), jax.tree.leaves(expected)
  assert len(leaves_a) == len(leaves_e)
  for a, e in zip(leaves_a, leaves_e):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def _restore_latest(directory, state, shardings):
  ckpt = checkpoints.Checkpointer(str(directory), checkpoints.CheckpointConfig(save_every_steps=1))
  try:
    return ckpt.restore_latest(state, shardings)
  finally:
    ckpt.close()


# When a read fails, tensorstore still completes the other pending reads and their
# callbacks find orbax's event loop closed: noise on stderr, not a failure.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in:pytest.PytestUnraisableExceptionWarning")
def test_corrupted_latest_falls_back_and_is_saved_again(tmp_path, caplog):
  state, shardings, _ = _state()
  step1, step2 = _shifted(state, 1.0), _shifted(state, 2.0)
  directory = tmp_path / "checkpoints"
  _save(directory, [(1, step1), (2, step2)])
  # Damage the array data of step 2's params (the OCDBT data files orbax wrote).
  data_files = [f for f in glob.glob(str(directory / "2" / "params" / "**" / "d" / "*"),
                                     recursive=True) if os.path.isfile(f)]
  assert data_files, sorted(glob.glob(str(directory / "2" / "params" / "**"), recursive=True))
  for f in data_files:
    with open(f, "r+b") as fh:
      fh.truncate(8)

  ckpt = checkpoints.Checkpointer(str(directory), checkpoints.CheckpointConfig(save_every_steps=1))
  try:
    with caplog.at_level(logging.WARNING, logger="xlt.checkpoints"):
      restored = ckpt.restore_latest(state, shardings)
    assert restored is not None
    step, restored_state, data_state = restored
    assert step == 1 and int(restored_state.step) == 1
    assert data_state == {"batches_consumed": 1}
    _assert_trees_equal(restored_state.params, step1.params)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "xlt.checkpoints"]
    assert any(f"{directory}/2 is unreadable" in w for w in warnings), warnings
    assert any(f"falling back to step 1 of {directory}" in w for w in warnings), warnings
    # Moved aside, never deleted: its files are all still there.
    [aside] = glob.glob(str(directory / checkpoints.UNREADABLE_DIR / "2-*"))
    for f in data_files:
      assert os.path.getsize(os.path.join(aside, os.path.relpath(f, directory / "2"))) == 8
    # Retraining reaches step 2 again: that save is not refused because orbax already
    # lists a step 2.
    assert ckpt.save(2, step2, {"batches_consumed": 2}, TINY.to_dict())
    ckpt.wait()
  finally:
    ckpt.close()
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger="xlt.checkpoints"):
    step, restored_state, data_state = _restore_latest(directory, state, shardings)
  assert step == 2 and data_state == {"batches_consumed": 2}
  _assert_trees_equal(restored_state.params, step2.params)
  assert not [r for r in caplog.records if r.name == "xlt.checkpoints"]


def test_unfinished_save_is_ignored(tmp_path, caplog):
  """A save cut off mid-way leaves orbax's `<step>.orbax-checkpoint-tmp` folder behind."""
  state, shardings, _ = _state()
  step1 = _shifted(state, 1.0)
  directory = tmp_path / "checkpoints"
  _save(directory, [(1, step1)])
  partial = directory / "2.orbax-checkpoint-tmp"
  shutil.copytree(directory / "1", partial)
  for marker in ("_CHECKPOINT_METADATA", "commit_success.txt"):
    (partial / marker).unlink()
  shutil.rmtree(partial / "opt_state")
  with caplog.at_level(logging.WARNING, logger="xlt.checkpoints"):
    step, restored_state, data_state = _restore_latest(directory, state, shardings)
  assert step == 1 and data_state == {"batches_consumed": 1}
  _assert_trees_equal(restored_state.params, step1.params)
  # The run that opens the checkpoints (holding MODEL_DIR's lock) removes it, and says so.
  assert not partial.exists()
  assert [r.getMessage() for r in caplog.records if r.name == "xlt.checkpoints"] == [
      f"removing {partial}: an unfinished save left by an interrupted run"]
  # The interrupted step can be saved for real afterwards.
  _save(directory, [(2, _shifted(state, 2.0))])
  assert _restore_latest(directory, state, shardings)[0] == 2


def test_no_readable_checkpoint_stops_unless_asked_to_discard(tmp_path):
  state, shardings, _ = _state()
  directory = tmp_path / "checkpoints"
  _save(directory, [(1, state), (2, _shifted(state, 1.0))])
  for step in (1, 2):
    (directory / str(step) / "params" / "_METADATA").rename(tmp_path / f"_METADATA.{step}")
  listing = sorted(glob.glob(str(directory / "**"), recursive=True))
  with pytest.raises(checkpoints.UnreadableCheckpointsError) as info:
    _restore_latest(directory, state, shardings)
  assert "step 2 (" in str(info.value) and "step 1 (" in str(info.value)
  assert sorted(glob.glob(str(directory / "**"), recursive=True)) == listing
  ckpt = checkpoints.Checkpointer(str(directory), checkpoints.CheckpointConfig(
      save_every_steps=1, discard_unreadable=True))
  try:
    assert ckpt.restore_latest(state, shardings) is None
    assert ckpt.latest_step() is None
  finally:
    ckpt.close()
  assert sorted(os.listdir(directory / checkpoints.UNREADABLE_DIR))[0].startswith("1-")
  assert len(os.listdir(directory / checkpoints.UNREADABLE_DIR)) == 2


def test_restore_onto_a_different_mesh(tmp_path):
  one_device = _mesh(devices=jax.devices()[:1])
  state, _, _ = _state(mesh=one_device)
  saved = _shifted(state, 0.5)
  directory = tmp_path / "checkpoints"
  _save(directory, [(3, saved)])

  big = _mesh(data=1, fsdp=4, model=2)
  assert dict(big.shape) == {"data": 1, "fsdp": 4, "model": 2}
  tx, _ = ADAMW.build()
  abstract, shardings, boxed = state_shardings(TINY, tx, big, RULES)
  step, restored, _ = _restore_latest(directory, abstract, shardings)
  assert step == 3
  _assert_trees_equal(restored.params, saved.params)
  _assert_trees_equal(restored.opt_state, saved.opt_state)
  for have, want in zip(jax.tree.leaves(restored), jax.tree.leaves(shardings)):
    assert have.sharding == want
  partitioning.assert_params_sharded(restored.params, boxed, big, RULES, min_size=1)
  # Spot-check the rules themselves: the embedding is [vocab, embed] -> (model, fsdp).
  embedding = restored.params["shared"]["embedding"]
  assert embedding.sharding == NamedSharding(big, P("model", "fsdp"))
  assert {s.data.shape for s in embedding.addressable_shards} == {(384 // 2, 64 // 4)}

  # Params only (what eval and INITIAL_CHECKPOINT_PATH use), from the run directory.
  params, step = checkpoints.restore_params(str(tmp_path), abstract.params, shardings.params)
  assert step == 3
  _assert_trees_equal(params, saved.params)
  assert all(p.sharding == s for p, s in
             zip(jax.tree.leaves(params), jax.tree.leaves(shardings.params)))


def _first_shape_difference(tree_a, tree_b):
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(tree_a), jax.tree.leaves(tree_b)):
    if a.shape != b.shape:
      return jax.tree_util.keystr(path), tuple(a.shape), tuple(b.shape)
  raise AssertionError("no difference")


def test_incompatible_model_config_names_parameter_and_shapes(tmp_path):
  state, shardings, _ = _state()
  _save(tmp_path / "checkpoints", [(1, state)])
  narrow = TINY.replace(d_model=32)
  tx, _ = ADAMW.build()
  abstract, narrow_shardings, _ = state_shardings(narrow, tx, _mesh(devices=jax.devices()[:1]),
                                                  RULES)
  name, wide_shape, narrow_shape = _first_shape_difference(state.params, abstract.params)
  with pytest.raises(checkpoints.IncompatibleCheckpointError) as info:
    checkpoints.restore_params(str(tmp_path), abstract.params, narrow_shardings.params)
  message = str(info.value)
  assert name in message and str(wide_shape) in message and str(narrow_shape) in message, message
  # Resuming is refused the same way: a mismatch is not an unreadable checkpoint to skip.
  with pytest.raises(checkpoints.IncompatibleCheckpointError, match=r"d.*shape"):
    _restore_latest(tmp_path / "checkpoints", abstract, narrow_shardings)


def test_changed_optimizer_is_an_error_not_a_fresh_start(tmp_path):
  state, _, _ = _state(optimizer=ADAMW)
  _save(tmp_path / "checkpoints", [(1, state)])
  other, other_shardings, _ = _state(optimizer=OptimizerConfig(name="adafactor"))
  with pytest.raises(checkpoints.IncompatibleCheckpointError) as info:
    _restore_latest(tmp_path / "checkpoints", other, other_shardings)
  assert "OptimizerConfig" in str(info.value) and "optimizer state entry" in str(info.value)


def _cli(*args, timeout=240):
  proc = subprocess.run([sys.executable, "-m", "xlt", *args], cwd=REPO_ROOT,
                        env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
  return proc.returncode, proc.stderr


def test_cli_initial_checkpoint_of_another_config(tmp_path):
  state, _, _ = _state()
  _save(tmp_path / "wide" / "checkpoints", [(5, state)])
  tx, _ = ADAMW.build()
  abstract, _, _ = state_shardings(TINY.replace(d_model=32), tx, _mesh(devices=jax.devices()[:1]),
                                   RULES)
  name, wide_shape, narrow_shape = _first_shape_difference(state.params, abstract.params)
  code, err = _cli("train", *TINY_RUN, f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
                   "--gin.T5Config.d_model=32",
                   f"--gin.INITIAL_CHECKPOINT_PATH='{tmp_path / 'wide'}'")
  assert code == 2, err[-3000:]
  assert "Traceback" not in err, err[-3000:]
  assert "error: checkpoint" in err and str(tmp_path / "wide") in err
  assert name in err and str(wide_shape) in err and str(narrow_shape) in err, err[-3000:]


def test_cli_model_dir_not_writable(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  code, err = _cli("train", *TINY_RUN, f"--gin.MODEL_DIR='{blocker}/run'")
  assert code == 2, err[-3000:]
  assert "Traceback" not in err, err[-3000:]
  assert "MODEL_DIR" in err and "not writable" in err and str(blocker) in err
  assert blocker.read_text() == "x"
