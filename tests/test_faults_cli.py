"""Faults answered at the entry point: bad config values, a batch that does not split over
the mesh, stop signals before the training loop, a full disk, XLT_DEBUG. Each is one line,
the documented exit code, a process that ends (subprocesses run with a timeout), and
nothing written."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, subprocess_env
from xlt import cli

TINY_RUN = ["--gin_file=gin/experiments/demo.gin", "--gin_file=gin/local_tiny.gin"]
TRAIN = [sys.executable, "-m", "xlt", "train", *TINY_RUN, "--gin.train.progress_bar=False"]
EIGHT_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
CHILD_TIMEOUT = 180


def _error_lines(err: str) -> list[str]:
  return [line for line in err.splitlines() if line.startswith(("error:", "xlt: stopped"))]


def _in_process(capsys, *argv):
  code = cli.main(list(argv))
  err = capsys.readouterr().err
  return code, err


def _files(folder) -> list[str]:
  return sorted(os.path.relpath(os.path.join(d, f), folder)
                for d, _, names in os.walk(folder) for f in names)


# --------------------------------------------------------------------- bad config values


@pytest.mark.parametrize("override, named", [
    ("--gin.TRAIN_STEPS='ten'", "train.train_steps"),
    ("--gin.BATCH_SIZE='8'", "batch_size"),
    ("--gin.CheckpointConfig.save_every_steps='5'", "CheckpointConfig.save_every_steps"),
    ("--gin.TASK_FEATURE_LENGTHS={'inputs': '64', 'targets': 16}", "task_feature_lengths"),
])
def test_wrongly_typed_value_is_one_line_before_any_work(capsys, tmp_path, override, named):
  model_dir = tmp_path / "run"
  code, err = _in_process(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{model_dir}'", override)
  assert code == 2, err
  assert "Traceback" not in err
  [line] = _error_lines(err)
  assert named in line and "expected" in line and "str" in line.split(" got ")[1], line
  assert not model_dir.exists()  # nothing ran: no MODEL_DIR, no step


def test_int_for_float_and_none_for_optional_are_fine(capsys, tmp_path):
  # Only the type check is exercised: the 6-row batch then fails the mesh check (8 devices).
  code, err = _in_process(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{tmp_path}/run'",
                          "--gin.Schedule.base=1", "--gin.VOCABULARY=None",
                          "--gin.BATCH_SIZE=6")
  assert code == 2 and "expected" not in err and "BATCH_SIZE = 6" in err, err


def test_override_of_an_unknown_macro_names_the_closest(capsys, tmp_path):
  model_dir = tmp_path / "run"
  code, err = _in_process(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{model_dir}'",
                          "--gin.TRAIN_STEP=5")
  assert code == 2 and "Traceback" not in err
  [line] = _error_lines(err)
  assert "TRAIN_STEP" in line and "did you mean TRAIN_STEPS" in line, line
  assert not model_dir.exists()


def test_reference_to_an_undefined_macro_names_the_binding(capsys, tmp_path):
  model_dir = tmp_path / "run"
  code, err = _in_process(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{model_dir}'",
                          "--gin.Schedule.decay_steps=%TRAIN_STEP")
  assert code == 2 and "Traceback" not in err
  [line] = _error_lines(err)
  assert "%TRAIN_STEP" in line and "Schedule.decay_steps" in line and "TRAIN_STEPS" in line
  assert not model_dir.exists()


def test_new_macro_used_by_another_override_is_allowed(capsys, tmp_path):
  # Defined and used on the command line only: not a typo. (Then stopped by the mesh check.)
  code, err = _in_process(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{tmp_path}/run'",
                          "--gin.MY_WARMUP=2", "--gin.Schedule.warmup_steps=%MY_WARMUP",
                          "--gin.BATCH_SIZE=6")
  assert code == 2 and "MY_WARMUP" not in err and "BATCH_SIZE = 6" in err, err


# ------------------------------------------------------------ batch vs mesh, and no hang


def test_eval_and_infer_batch_checked_against_the_mesh(capsys, tmp_path):
  # conftest gives this process 8 CPU devices; the checkpoint need not exist: nothing loads.
  for command, gin_file in (("eval", "gin/experiments/demo_eval.gin"),
                            ("infer", "gin/experiments/demo_infer.gin")):
    extra = [f"--gin.OUTPUT_PATH='{tmp_path}/p.jsonl'"] if command == "infer" else []
    code, err = _in_process(capsys, command, f"--gin_file={gin_file}",
                            f"--gin.CHECKPOINT_PATH='{tmp_path}/none'", "--gin.BATCH_SIZE=12",
                            *extra)
    assert code == 2 and "Traceback" not in err, err
    [line] = _error_lines(err)
    assert "BATCH_SIZE = 12" in line and "8 devices" in line and "8, 16, 24" in line, line
  assert _files(tmp_path) == []


def test_batch_not_splitting_over_devices_exits_with_one_line(tmp_path):
  """Today's failure: a jax sharding error at the first step, then a process that never
  ends. The timeout is the test that it ends."""
  model_dir = tmp_path / "run"
  proc = subprocess.run(TRAIN + [f"--gin.MODEL_DIR='{model_dir}'", "--gin.BATCH_SIZE=6"],
                        cwd=REPO_ROOT, env=subprocess_env(**EIGHT_DEVICES), capture_output=True,
                        text=True, timeout=CHILD_TIMEOUT)
  assert proc.returncode == 2, proc.stderr
  assert "Traceback" not in proc.stderr
  [line] = _error_lines(proc.stderr)
  assert "BATCH_SIZE = 6" in line and "8 devices" in line and "multiple of 8" in line, line
  assert not model_dir.exists()


# ------------------------------------------------------- stop signals before the loop


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_before_the_training_loop_exits_cleanly(tmp_path, sig):
  """Sent once the model is built (task loading and compilation still to come): today
  SIGTERM kills the process outright and SIGINT prints a traceback and "Failed to load
  task"."""
  model_dir = tmp_path / "run"
  proc = subprocess.Popen(
      TRAIN + [f"--gin.MODEL_DIR='{model_dir}'"], cwd=REPO_ROOT, env=subprocess_env(),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      # A suite started in the background ignores SIGINT, and children inherit that.
      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  err_lines = []
  try:
    deadline = time.monotonic() + CHILD_TIMEOUT
    for line in proc.stderr:  # "xlt: 0.25M parameters on mesh ..." comes before the loop
      err_lines.append(line)
      if line.startswith("xlt: ") and "parameters" in line or time.monotonic() > deadline:
        break
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=CHILD_TIMEOUT)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  err = "".join(err_lines) + rest
  assert proc.returncode == 128 + sig, err
  assert "Traceback" not in err and "Failed to load task" not in err, err
  [line] = _error_lines(err)
  assert signal.Signals(sig).name in line, line
  checkpoints = model_dir / "checkpoints"
  assert not checkpoints.exists() or os.listdir(checkpoints) == [], _files(model_dir)


# ------------------------------------------------------------- full disk, XLT_DEBUG


@pytest.fixture
def tiny_disk(tmp_path):
  """A 1 MiB tmpfs: a real ENOSPC, which needs root (or CAP_SYS_ADMIN) to mount."""
  mount_point = tmp_path / "disk"
  mount_point.mkdir()
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                           capture_output=True, text=True)
  if mounted.returncode != 0:
    pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {mounted.stderr.strip()}")
  try:
    yield mount_point
  finally:
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_is_one_line_naming_the_path(tiny_disk):
  """The first checkpoint does not fit: today ~9 to 44 tracebacks from orbax's threads."""
  model_dir = tiny_disk / "run"
  proc = subprocess.run(
      TRAIN + [f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=2",
               "--gin.CheckpointConfig.save_every_steps=1", "--gin.Schedule.warmup_steps=1"],
      cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True,
      timeout=CHILD_TIMEOUT)
  assert proc.returncode == 2, proc.stderr
  assert "Traceback" not in proc.stderr, proc.stderr
  [line] = _error_lines(proc.stderr)
  assert line.startswith("error: no space left on device writing "), line
  # Which write meets the full disk first (a checkpoint, the metrics) depends on timing;
  # when the error names its file, the line names it.
  assert str(model_dir) in line or line.endswith("(the error names none)"), line


def test_xlt_debug_shows_the_traceback_of_a_usage_error(capsys, monkeypatch, tmp_path):
  monkeypatch.setenv("XLT_DEBUG", "1")
  code, err = _in_process(capsys, "eval", "--gin_file=gin/experiments/demo_eval.gin",
                          f"--gin.CHECKPOINT_PATH='{tmp_path}/none'", "--gin.BATCH_SIZE=8")
  assert code == 2
  assert "Traceback (most recent call last)" in err and "FileNotFoundError" in err, err
  [line] = _error_lines(err)
  assert os.fspath(tmp_path / "none") in line
