"""Training faults (issue 15, items 4, 5, 9): a diverging run, a killed run resumed, no data.

Real `xlt train` processes on the tiny demo run where the process matters (kill, exit
codes, what is left on disk); in-process `cli.main` or unit calls where it does not.
"""
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time

import jax
import numpy as np
import pytest
import seqio
import tensorflow as tf

from conftest import child_process as _child, run_child
from xlt import checkpoints, cli, divergence, partitioning
from xlt.data import template_tasks, vocabulary
from xlt.data.sources import korani
from xlt.metrics_log import JsonlLog, MetricsLogger
from xlt.models import TINY
from xlt.optimizers import OptimizerConfig
from xlt.train_state import create_sharded_state, state_shardings

TINY_RUN = ["--gin_file=gin/experiments/demo.gin", "--gin_file=gin/local_tiny.gin",
            "--gin.train.progress_bar=False"]
TRAIN = [sys.executable, "-m", "xlt", "train", *TINY_RUN]
CHILD_TIMEOUT = 240
# A constant learning rate from the restored step on: 1e30 makes the next update's params
# ~1e30 (finite: only the divergence guard sees it); 1e39 is inf in float32.
HUGE_LR = ["--gin.Schedule.kind='constant'", "--gin.Schedule.warmup_steps=0",
           "--gin.CheckpointConfig.save_every_steps=1"]


def _train_cmd(model_dir, *extra):
  return TRAIN + [f"--gin.MODEL_DIR='{model_dir}'", *extra]


def _refuse(constant):
  raise ValueError(f"bare {constant} in train_metrics.jsonl (not JSON)")


def _lines(model_dir):
  path = os.path.join(model_dir, "train_metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return f.read().splitlines(keepends=True)


def _rows(model_dir):
  """Every row, parsed as strict JSON (NaN / Infinity refused); all lines complete."""
  lines = _lines(model_dir)
  assert all(line.endswith("\n") for line in lines), lines[-1:]
  return [json.loads(line, parse_constant=_refuse) for line in lines]


def _error_line(out):
  errors = [line for line in out.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, out[-3000:]
  assert "Traceback" not in out, out[-3000:]
  return errors[0]


def _steps_on_disk(model_dir):
  folder = os.path.join(model_dir, "checkpoints")
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit())


def _checksums(folder):
  sums = {}
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        sums[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
  return sums


def _norm(params):
  return float(np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64)))
                           for x in jax.tree.leaves(params))))


def _one_device():
  mesh = partitioning.make_mesh(partitioning.MeshConfig(), jax.devices()[:1])
  tx, _ = OptimizerConfig(name="adamw").build()
  return mesh, tx


def _checkpoint_params(model_dir):
  mesh, tx = _one_device()
  abstract, shardings, _ = state_shardings(TINY, tx, mesh, partitioning.DEFAULT_RULES)
  return checkpoints.restore_params(model_dir, abstract.params, shardings.params)


@functools.cache
def _initial_norm():
  mesh, tx = _one_device()
  state, _, _ = create_sharded_state(TINY, tx, mesh, partitioning.DEFAULT_RULES, seed=0)
  return _norm(state.params)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
  """(MODEL_DIR, S, R): a run SIGKILLed after logging step R > S, its newest checkpoint.

  The process is frozen (SIGSTOP) to read the disk: killed only once rows past the
  newest finished checkpoint exist, so the rows a resume must drop are really there."""
  model_dir = str(tmp_path_factory.mktemp("faults") / "killed")
  log_path = model_dir + ".log"
  cmd = _train_cmd(model_dir, "--gin.TRAIN_STEPS=1000",
                   "--gin.CheckpointConfig.save_every_steps=2")
  with _child(cmd, log_path) as proc:
    deadline = time.monotonic() + CHILD_TIMEOUT
    while True:
      assert time.monotonic() < deadline, "no checkpoint with rows past it in time"
      assert proc.poll() is None, open(log_path).read()[-3000:]
      if os.path.isdir(os.path.join(model_dir, "checkpoints")) and _steps_on_disk(model_dir):
        proc.send_signal(signal.SIGSTOP)
        saved, lines = _steps_on_disk(model_dir)[-1], _lines(model_dir)
        if lines[-1].endswith("\n") and json.loads(lines[-1])["step"] > saved:
          proc.kill()
          assert proc.wait(timeout=30) == -signal.SIGKILL
          break
        proc.send_signal(signal.SIGCONT)
      time.sleep(0.005)
  return model_dir, _steps_on_disk(model_dir)[-1], _rows(model_dir)[-1]["step"]


def _copy(run, tmp_path, name="run"):
  model_dir = str(tmp_path / name)
  shutil.copytree(run, model_dir)
  return model_dir


def _checkpoint_sums(model_dir):
  return {s: _checksums(os.path.join(model_dir, "checkpoints", str(s)))
          for s in _steps_on_disk(model_dir)}


@pytest.fixture(scope="module")
def continued(killed_run, tmp_path_factory):
  """Two copies of the killed run continued side by side (to save time): "resumed" at the
  demo's learning rate, "diverged" at 1e30. Each: (MODEL_DIR, exit code, output, its
  rows and checkpoint checksums before)."""
  source, _, logged = killed_run
  folder = tmp_path_factory.mktemp("faults")
  extra = {"resumed": [f"--gin.TRAIN_STEPS={logged + 2}",
                       "--gin.CheckpointConfig.save_every_steps=2"],
           "diverged": ["--gin.TRAIN_STEPS=1000", *HUGE_LR, "--gin.Schedule.base=1e30"]}
  runs = {}
  with contextlib.ExitStack() as stack:
    for name, args in extra.items():
      model_dir = _copy(source, folder, name)
      before = (_lines(model_dir), _checkpoint_sums(model_dir))
      proc = stack.enter_context(_child(_train_cmd(model_dir, *args), model_dir + ".log"))
      runs[name] = (model_dir, proc, before)
    for proc in [p for _, p, _ in runs.values()]:
      proc.wait(timeout=CHILD_TIMEOUT)
  return {name: (model_dir, proc.returncode, open(model_dir + ".log").read(), *before)
          for name, (model_dir, proc, before) in runs.items()}


def test_resume_after_sigkill_logs_each_step_once(killed_run, continued):
  _, saved, logged = killed_run
  model_dir, code, out, lines_before, sums_before = continued["resumed"]
  assert code == 0, out[-3000:]
  assert [json.loads(line)["step"] for line in lines_before] == list(range(1, logged + 1))
  assert re.search(rf"resumed from \S+ at step {saved}\b", out), out[-3000:]
  # The rows up to the checkpoint are the killed run's, untouched; the rest logged once.
  assert [r["step"] for r in _rows(model_dir)] == list(range(1, logged + 3))
  assert _lines(model_dir)[:saved] == lines_before[:saved]
  now = _checkpoint_sums(model_dir)  # older ones may have gone by CheckpointConfig.keep
  assert saved in now and {s: now[s] for s in sums_before if s in now} == {
      s: sums for s, sums in sums_before.items() if s in now}


def test_divergence_guard_stops_before_saving_huge_params(killed_run, continued):
  _, saved, _ = killed_run
  model_dir, code, out, _, sums_before = continued["diverged"]
  assert code == 1, out[-3000:]
  error = _error_line(out)
  assert re.search(rf"resumed from \S+ at step {saved}\b", out), out[-3000:]
  # Step saved+1's update gave params ~1e30: finite, but never written.
  match = re.search(rf"parameter norm grew over 10x, from (\S+) at step {saved} to (\S+) at "
                    rf"step {saved + 1}\b.*DivergenceConfig.max_norm_growth", error)
  assert match, error
  assert float(match.group(2)) > 1e20
  path = os.path.join(model_dir, "checkpoints", str(saved))
  assert f"the last good checkpoint {path} is kept (step {saved})" in error
  # Every checkpoint that existed is there, byte for byte, and nothing newer.
  assert _checkpoint_sums(model_dir) == sums_before
  params, step = _checkpoint_params(model_dir)
  assert step == saved
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
  norm = _norm(params)
  assert float(match.group(1)) == pytest.approx(norm, rel=1e-3)
  assert 0.5 < norm / _initial_norm() < 2, (norm, _initial_norm())


def test_restart_resumes_from_the_guarded_checkpoint_and_writes_strict_json(
    killed_run, continued, tmp_path):
  """A restart after the guard stopped the run resumes from the checkpoint it named. At
  learning rate 1e39 (inf in float32) the logged learning rate is inf: JSON null and a
  flag, never a bare Infinity; the update is non-finite and not saved either."""
  _, saved, _ = killed_run
  model_dir = _copy(continued["diverged"][0], tmp_path)
  diverged_row = [r for r in _rows(model_dir) if r["step"] == saved + 1][-1]
  code, out = run_child(_train_cmd(model_dir, "--gin.TRAIN_STEPS=1000", *HUGE_LR,
                              "--gin.Schedule.base=1e39"), tmp_path / "restart.log")
  assert code == 1, out[-3000:]
  assert re.search(rf"resumed from \S+ at step {saved}\b", out), out[-3000:]
  error = _error_line(out)
  assert f"non-finite parameters after the update at step {saved + 1}" in error
  assert f"checkpoints/{saved} is kept (step {saved})" in error
  assert _steps_on_disk(model_dir)[-1] == saved

  rows = _rows(model_dir)  # strict: raises on NaN / Infinity
  assert [r["step"] for r in rows] == list(range(1, saved + 2))  # once each, no leftovers
  row = rows[-1]
  assert row["learning_rate"] is None and row["nonfinite"] == ["learning_rate"]
  # The same parameters and batch as the diverged run's step: the same loss.
  assert row["loss"] == diverged_row["loss"]


def test_loss_spike_over_the_running_mean_stops_the_run():
  config = divergence.DivergenceConfig(warmup_steps=5)
  guard = divergence.Guard(config, "/runs/r/checkpoints", start_step=0, start_norm=1.0)
  for step in range(1, 8):
    guard.check_loss(step, 2.0 + 0.1 * (step % 2), kept_step=None)
  guard.check_loss(8, 15.0, kept_step=None)  # 7x the mean: a bad batch, not divergence
  with pytest.raises(divergence.DivergedError) as e:
    guard.check_loss(9, 40.0, kept_step=6)
  assert "loss spike at step 9: 40 is over 10x its running mean" in str(e.value)
  assert "/runs/r/checkpoints/6 is kept (step 6)" in str(e.value)
  # Off, during warmup, or below the floor: no stop.
  off = divergence.Guard(divergence.DivergenceConfig(loss_spike_factor=0), "d", 0, 1.0)
  early = divergence.Guard(divergence.DivergenceConfig(warmup_steps=5), "d", 0, 1.0)
  small = divergence.Guard(divergence.DivergenceConfig(warmup_steps=0), "d", 0, 1.0)
  for guard, losses in ((off, [2.0] * 30 + [1e6]), (early, [2.0, 1e3]),
                        (small, [0.01] * 30 + [0.5])):
    for step, loss in enumerate(losses, 1):
      guard.check_loss(step, loss, kept_step=None)
  with pytest.raises(divergence.DivergedError, match=r"non-finite loss \(nan\) at step 3; no "
                     r"checkpoint in d passed"):
    off.check_loss(3, float("nan"), kept_step=None)


def test_divergence_config_rejects_bad_values():
  with pytest.raises(ValueError, match="max_norm_growth"):
    divergence.DivergenceConfig(max_norm_growth=-1)
  with pytest.raises(ValueError, match="ema_decay"):
    divergence.DivergenceConfig(ema_decay=1.0)


def test_metrics_log_is_strict_json_and_drops_rows_past_the_resume_step(tmp_path):
  path = tmp_path / "train_metrics.jsonl"
  first = JsonlLog(str(path))
  for step in (1, 2, 3):
    first.write({"step": step, "loss": float("nan") if step == 3 else 1.0,
                 "grad_norm": float("inf")})
  first.close()
  with open(path, "a") as f:
    f.write('{"step": 4, "lo')  # killed mid-line
  rows = [json.loads(line, parse_constant=_refuse) for line in path.read_text().splitlines()[:3]]
  assert rows[2] == {"step": 3, "loss": None, "grad_norm": None,
                     "nonfinite": ["loss", "grad_norm"]}

  resumed = JsonlLog(str(path), resume_step=2)
  assert path.read_text().count("\n") == 3  # nothing changes before the first write
  resumed.write({"step": 3, "loss": 0.5})
  resumed.close()
  steps = [json.loads(line, parse_constant=_refuse)["step"]
           for line in path.read_text().splitlines()]
  assert steps == [1, 2, 3]


def test_metrics_logger_writes_nothing_before_its_first_row(tmp_path):
  logger = MetricsLogger(str(tmp_path / "run"), resume_step=0)
  logger.close()
  assert not (tmp_path / "run").exists()


def _cli(capsys, *argv):
  code = cli.main(list(argv))
  err = capsys.readouterr().err
  assert "Traceback" not in err, err
  errors = [line for line in err.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, err
  return code, errors[0]


def _written(model_dir):
  """What a run left that counts as progress: step folders, metrics, events."""
  found = []
  for root, dirs, files in os.walk(model_dir):
    rel = os.path.relpath(root, model_dir)
    found += [os.path.join(rel, d) for d in dirs if d.isdigit()]
    found += [os.path.join(rel, f) for f in files
              if f.endswith(".jsonl") or f.startswith("events.out")]
  return found


@pytest.fixture
def header_only_task(tmp_path):
  """A seqio task over a header-only TSV: a dataset that yields nothing, without error."""
  tsv = tmp_path / "header_only.tsv"
  tsv.write_text("inputs\ttargets\n")
  name = "faults_header_only_tsv"

  def dataset_fn(split, shuffle_files, seed=None):
    del split, shuffle_files, seed
    ds = tf.data.experimental.CsvDataset(str(tsv), [tf.string, tf.string], header=True,
                                         field_delim="\t")
    return ds.map(lambda inputs, targets: {"inputs": inputs, "targets": targets})

  seqio.TaskRegistry.add(
      name, source=seqio.FunctionDataSource(dataset_fn, splits=["train"]),
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
      output_features=vocabulary.OUTPUT_FEATURES)
  yield name
  seqio.TaskRegistry.remove(name)


def test_data_without_a_single_example_exits_2_and_writes_nothing(capsys, tmp_path,
                                                                  header_only_task):
  model_dir = tmp_path / "run"
  code, error = _cli(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{model_dir}'",
                     f"--gin.MIXTURE_OR_TASK_NAME='{header_only_task}'")
  assert code == 2, error
  assert (f"task or mixture '{header_only_task}' (MIXTURE_OR_TASK_NAME), split 'train', "
          "produced no examples: nothing was trained or saved") in error
  assert _written(model_dir) == []


@pytest.fixture
def header_only_korani_task(tmp_path):
  """A KORANI dataset whose train.csv has the header only (the data layer's own check)."""
  folder = tmp_path / "korani" / "cluster" / "faults_empty"
  folder.mkdir(parents=True)
  (folder / "train.csv").write_text(",".join(korani.COLUMNS) + "\n")
  name = "faults_korani_header_only"
  source = korani.KoraniSource("faults_empty", "cluster/faults_empty", root=tmp_path / "korani")
  names = template_tasks.register_prerendered(name, source, cluster="test", language="ko",
                                              purpose="train", splits=("train",))
  yield name, folder / "train.csv"
  for registered in names:
    seqio.TaskRegistry.remove(registered)


def test_header_only_data_file_exits_2_naming_task_and_file(capsys, tmp_path,
                                                            header_only_korani_task):
  name, csv_path = header_only_korani_task
  model_dir = tmp_path / "run"
  code, error = _cli(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{model_dir}'",
                     f"--gin.MIXTURE_OR_TASK_NAME='{name}'")
  assert code == 2, error
  assert name in error and str(csv_path) in error, error
  assert _written(model_dir) == []


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_train_steps_not_positive_exits_2_before_any_work(capsys, tmp_path, steps):
  model_dir = tmp_path / "run"
  code, error = _cli(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{model_dir}'",
                     f"--gin.TRAIN_STEPS={steps}")
  assert code == 2, error
  assert "TRAIN_STEPS" in error and steps in error, error
  assert not model_dir.exists()
