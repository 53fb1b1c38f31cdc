"""Real `xlt train` processes stopped the hard way: SIGKILL, SIGTERM, a diverging run."""
import json
import os
import re
import shutil
import signal
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import child_process as _child, run_child
from xlt import checkpoints, partitioning
from xlt.models import TINY
from xlt.optimizers import OptimizerConfig
from xlt.train_state import state_shardings

TRAIN = [sys.executable, "-m", "xlt", "train", "--gin_file=gin/experiments/demo.gin",
         "--gin_file=gin/local_tiny.gin", "--gin.train.progress_bar=False"]
# Dropout, packing and shuffling on: the dropout rng and the data position must resume too.
RESUME_RUN = ["--gin.TRAIN_STEPS=8", "--gin.CheckpointConfig.save_every_steps=2",
              "--gin.T5Config.dropout_rate=0.1", "--gin.PACK=True",
              "--gin.SHUFFLE_TRAIN_EXAMPLES=True"]
CHILD_TIMEOUT = 240


def _train_cmd(model_dir, *extra):
  return TRAIN + [f"--gin.MODEL_DIR='{model_dir}'", *extra]


def _metrics(model_dir):
  """The rows of train_metrics.jsonl, in order (a half-written last line is skipped)."""
  path = os.path.join(model_dir, "train_metrics.jsonl")
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except ValueError:
        break
  return rows


def _wait_for_step(proc, model_dir, step, log_path, timeout=CHILD_TIMEOUT):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    rows = _metrics(model_dir)
    if rows and rows[-1]["step"] >= step:
      return rows[-1]["step"]
    if proc.poll() is not None:
      with open(log_path) as f:
        pytest.fail(f"trainer exited ({proc.returncode}) before step {step}:\n{f.read()[-3000:]}")
    time.sleep(0.01)  # a tiny step takes ~20 ms: poll often to stop it mid-run
  pytest.fail(f"no step {step} logged within {timeout}s")


def _steps_on_disk(model_dir):
  ckpt_dir = os.path.join(model_dir, "checkpoints")
  return sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())


def _params(model_dir, config=TINY):
  """(params, step) of the newest checkpoint, on one device."""
  mesh = partitioning.make_mesh(partitioning.MeshConfig(), jax.devices()[:1])
  tx, _ = OptimizerConfig(name="adamw").build()
  abstract, shardings, _ = state_shardings(config, tx, mesh, partitioning.DEFAULT_RULES)
  return checkpoints.restore_params(model_dir, abstract.params, shardings.params)


def _data_iterator(model_dir, step):
  directory = os.path.join(model_dir, "checkpoints")
  manager = checkpoints.open_manager(directory, ocp.CheckpointManagerOptions(
      read_only=True, create=False))
  try:
    return dict(manager.restore(step, args=ocp.args.Composite(
        data_iterator=ocp.args.JsonRestore()))["data_iterator"])
  finally:
    manager.close()


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
  run_a, run_b = str(tmp_path / "a"), str(tmp_path / "b")
  with _child(_train_cmd(run_a, *RESUME_RUN), tmp_path / "a.log") as proc_a:
    with _child(_train_cmd(run_b, *RESUME_RUN), tmp_path / "b1.log") as proc_b:
      killed_at = _wait_for_step(proc_b, run_b, 5, tmp_path / "b1.log")
      os.kill(proc_b.pid, signal.SIGKILL)
      assert proc_b.wait(timeout=30) == -signal.SIGKILL
    assert proc_a.wait(timeout=CHILD_TIMEOUT) == 0, (tmp_path / "a.log").read_text()[-3000:]
  before = _metrics(run_b)
  rows_before = len(before)
  assert [r["step"] for r in before] == list(range(1, rows_before + 1))
  assert rows_before >= killed_at >= 5

  code, out = run_child(_train_cmd(run_b, *RESUME_RUN), tmp_path / "b2.log")
  assert code == 0, out[-3000:]
  resumed = re.search(r"resumed from \S+ at step (\d+)", out)
  assert resumed, out[-3000:]
  start = int(resumed.group(1))
  assert 2 <= start <= killed_at and start % 2 == 0
  # Each step once: the rows logged past the checkpoint before the kill were dropped.
  assert [r["step"] for r in _metrics(run_b)] == list(range(1, 9))
  assert _metrics(run_b)[:start] == before[:start]

  uninterrupted = {r["step"]: r for r in _metrics(run_a)}
  assert sorted(uninterrupted) == list(range(1, 9))
  last_b = {r["step"]: r for r in _metrics(run_b)}
  for step in range(start + 1, 9):
    for key in ("loss", "grad_norm", "target_tokens", "learning_rate"):
      assert last_b[step][key] == uninterrupted[step][key], (step, key)
  # The steps both processes logged saw the same batches and dropout masks as run A too.
  for step in range(1, rows_before + 1):
    assert before[step - 1]["loss"] == uninterrupted[step]["loss"], step

  params_a, step_a = _params(run_a)
  params_b, step_b = _params(run_b)
  assert step_a == step_b == 8
  for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sigterm_saves_the_step_reached_and_exits_143(tmp_path):
  model_dir = str(tmp_path / "run")
  cmd = _train_cmd(model_dir, "--gin.TRAIN_STEPS=1000",
                   "--gin.CheckpointConfig.save_every_steps=1000")
  log_path = tmp_path / "run.log"
  with _child(cmd, log_path) as proc:
    _wait_for_step(proc, model_dir, 3, log_path)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
  out = log_path.read_text()
  assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
  assert "Traceback" not in out, out[-3000:]
  reached = _metrics(model_dir)[-1]["step"]
  assert 3 <= reached < 1000
  assert f"received SIGTERM: saved step {reached}" in out
  assert _steps_on_disk(model_dir) == [reached]
  params, step = _params(model_dir)
  assert step == reached
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
  assert _data_iterator(model_dir, reached) == {"batches_consumed": reached}


@pytest.fixture(scope="module")
def two_good_steps(tmp_path_factory):
  """A run directory with a normal checkpoint at step 2."""
  model_dir = str(tmp_path_factory.mktemp("diverge") / "base")
  code, out = run_child(_train_cmd(model_dir, "--gin.TRAIN_STEPS=2",
                                   "--gin.Schedule.warmup_steps=1"),
                        os.path.join(os.path.dirname(model_dir), "base.log"))
  assert code == 0, out[-3000:]
  assert _steps_on_disk(model_dir) == [2]
  return model_dir


@pytest.mark.parametrize("base_lr, what_fails", [
    # Params grow to ~1e30 after step 3; the forward pass of step 4 overflows to NaN.
    # (The divergence guard, off here, stops at step 3 already: tests/test_faults_training.py;
    # this tests the last line of defence behind it.)
    ("1e30", "loss"),
    # 1e39 is inf in float32: step 3's loss is still finite, its update is not.
    ("1e39", "update"),
], ids=["loss_overflows", "update_overflows"])
def test_diverging_run_stops_and_keeps_a_finite_checkpoint(two_good_steps, tmp_path, base_lr,
                                                           what_fails):
  model_dir = str(tmp_path / "run")
  shutil.copytree(two_good_steps, model_dir)
  logged_before = len(_metrics(model_dir))
  code, out = run_child(_train_cmd(
      model_dir, "--gin.TRAIN_STEPS=10", "--gin.Schedule.kind='constant'",
      f"--gin.Schedule.base={base_lr}", "--gin.Schedule.warmup_steps=0",
      "--gin.CheckpointConfig.save_every_steps=1",
      "--gin.DivergenceConfig.max_norm_growth=0"), tmp_path / "run.log")
  assert code == 1, out[-3000:]
  assert "Traceback" not in out, out[-3000:]
  assert re.search(r"resumed from \S+ at step 2\b", out), out[-3000:]
  # Every step was due for a save: the newest one kept must still be usable.
  kept = _steps_on_disk(model_dir)
  params, step = _params(model_dir)
  assert step == kept[-1]
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params)), step
  assert f"is kept (step {kept[-1]})" in out

  match = re.search(r"non-finite (loss \((?:nan|inf|-inf)\)|parameters after the update) "
                    r"at step (\d+)", out)
  assert match, out[-3000:]
  failed_at = int(match.group(2))
  logged = [r["step"] for r in _metrics(model_dir)[logged_before:]]
  assert logged and logged[0] == 3 and kept[-1] < failed_at
  if what_fails == "loss":
    assert match.group(1).startswith("loss")
    assert failed_at == logged[-1] + 1  # a step whose loss is non-finite is not logged
  else:
    assert match.group(1) == "parameters after the update"
    assert failed_at == logged[-1] == 3
