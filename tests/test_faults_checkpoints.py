"""Faults around MODEL_DIR's checkpoints and its run lock, on the real `xlt` command line.

One tiny run (killed mid-save, then resumed) is shared; each case works on a copy of it
and checks that nothing that existed before was lost (checksums of step folders).
"""
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, subprocess_env
from xlt import run_lock

TRAIN = [sys.executable, "-m", "xlt", "train", "--gin_file=gin/experiments/demo.gin",
         "--gin_file=gin/local_tiny.gin", "--gin.train.progress_bar=False",
         "--gin.Schedule.warmup_steps=1", "--gin.CheckpointConfig.save_every_steps=2"]
TMP = ".orbax-checkpoint-tmp"
TIMEOUT = 300


def _train(model_dir, *extra):
  return TRAIN + [f"--gin.MODEL_DIR='{model_dir}'", *extra]


def _popen(cmd, log_path):
  return subprocess.Popen(cmd, cwd=REPO_ROOT, env=subprocess_env(), stdout=open(log_path, "w"),
                          stderr=subprocess.STDOUT)


def _run(cmd, log_path):
  proc = _popen(cmd, log_path)
  try:
    proc.wait(timeout=TIMEOUT)
  finally:
    if proc.poll() is None:
      proc.kill()
  return proc.returncode, open(log_path).read()


def _errors(out):
  return [line for line in out.splitlines() if line.startswith("error:")]


def _checksum(folder):
  """sha256 over every file's relative path and bytes."""
  digest = hashlib.sha256()
  for path in sorted(glob.glob(os.path.join(folder, "**"), recursive=True)):
    if os.path.isfile(path):
      digest.update(os.path.relpath(path, folder).encode())
      with open(path, "rb") as f:
        digest.update(f.read())
  return digest.hexdigest()


def _steps(model_dir):
  return sorted(int(d) for d in os.listdir(os.path.join(model_dir, "checkpoints")) if d.isdigit())


def _tmp_folders(model_dir):
  return glob.glob(os.path.join(model_dir, "checkpoints", f"*{TMP}*"))


def _metric_steps(model_dir):
  with open(os.path.join(model_dir, "train_metrics.jsonl")) as f:
    return [json.loads(line)["step"] for line in f if line.strip()]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
  """6 steps, saves every 2: killed with SIGKILL while a save is being written (an
  orbax tmp folder exists), then the same command again to the end."""
  folder = tmp_path_factory.mktemp("faults")
  model_dir = str(folder / "base")
  cmd = _train(model_dir, "--gin.TRAIN_STEPS=6")
  proc = _popen(cmd, folder / "killed.log")
  seen = None
  deadline = time.monotonic() + TIMEOUT
  try:
    while proc.poll() is None and time.monotonic() < deadline and not seen:
      if os.path.isdir(os.path.join(model_dir, "checkpoints")):
        seen = _tmp_folders(model_dir)
      time.sleep(0.005)
    if seen:
      proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert seen, f"no {TMP} folder seen:\n{open(folder / 'killed.log').read()[-3000:]}"
  assert proc.returncode == -signal.SIGKILL
  code, out = _run(cmd, folder / "resumed.log")
  return {"dir": model_dir, "seen": seen, "code": code, "out": out}


def _copy(base_run, tmp_path):
  model_dir = str(tmp_path / "run")
  shutil.copytree(base_run["dir"], model_dir)
  return model_dir


def test_sigkill_while_a_save_is_written_then_resume(base_run):
  assert base_run["code"] == 0, base_run["out"][-3000:]
  assert "Traceback" not in base_run["out"]
  model_dir = base_run["dir"]
  assert _steps(model_dir)[-1] == 6 and _tmp_folders(model_dir) == []
  assert max(_metric_steps(model_dir)) == 6
  assert not os.path.exists(os.path.join(model_dir, run_lock.LOCK_NAME))


def test_every_checkpoint_unreadable_stops_and_changes_nothing(base_run, tmp_path):
  model_dir = _copy(base_run, tmp_path)
  steps = _steps(model_dir)
  for step in steps:  # as the issue did: each step's array metadata moved away
    params = os.path.join(model_dir, "checkpoints", str(step), "params")
    os.rename(os.path.join(params, "_METADATA"), str(tmp_path / f"_METADATA.{step}"))
  before = _checksum(os.path.join(model_dir, "checkpoints"))
  metrics_before = _checksum_file(os.path.join(model_dir, "train_metrics.jsonl"))

  code, out = _run(_train(model_dir, "--gin.TRAIN_STEPS=8"), tmp_path / "run.log")
  assert code == 2, out[-3000:]
  assert "Traceback" not in out, out[-3000:]
  [error] = _errors(out)
  assert "no checkpoint in" in error and "can be read" in error
  for step in steps:
    assert f"step {step} (" in error, error
  assert "discard_unreadable" in error
  assert _checksum(os.path.join(model_dir, "checkpoints")) == before
  assert _checksum_file(os.path.join(model_dir, "train_metrics.jsonl")) == metrics_before


def _checksum_file(path):
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def _dead_pid():
  proc = subprocess.Popen(["true"])
  proc.wait()
  return proc.pid


def test_restart_after_a_crash_moves_unreadable_aside_cleans_tmp_and_takes_a_stale_lock(
    base_run, tmp_path):
  model_dir = _copy(base_run, tmp_path)
  checkpoints = os.path.join(model_dir, "checkpoints")
  newest = _steps(model_dir)[-1]
  older = _steps(model_dir)[-2]
  os.rename(os.path.join(checkpoints, str(newest), "params", "_METADATA"),
            str(tmp_path / "_METADATA"))
  newest_sum = _checksum(os.path.join(checkpoints, str(newest)))
  older_sum = _checksum(os.path.join(checkpoints, str(older)))
  # What a run killed mid-save leaves: an unfinished save and its lock file.
  shutil.copytree(os.path.join(checkpoints, str(older)), os.path.join(checkpoints, f"8{TMP}"))
  dead = _dead_pid()
  with open(os.path.join(model_dir, run_lock.LOCK_NAME), "w") as f:
    json.dump({"host": os.uname().nodename, "pid": dead, "started": "2026-01-01T00:00:00"}, f)

  code, out = _run(_train(model_dir, f"--gin.TRAIN_STEPS={newest}"), tmp_path / "run.log")
  assert code == 0, out[-3000:]
  assert "Traceback" not in out, out[-3000:]
  assert re.search(rf"checkpoint \S+/{newest} is unreadable", out), out[-3000:]
  assert re.search(rf"resumed from \S+ at step {older}\b", out), out[-3000:]
  # Moved aside, not deleted, and the step saved again by the retraining.
  [aside] = glob.glob(os.path.join(checkpoints, "unreadable", f"{newest}-*"))
  assert f"moved unreadable checkpoint {checkpoints}/{newest}" in out
  assert _checksum(aside) == newest_sum
  assert _steps(model_dir)[-1] == newest
  assert _checksum(os.path.join(checkpoints, str(older))) == older_sum
  # The unfinished save is gone, with a log line; the stale lock was taken over.
  assert _tmp_folders(model_dir) == []
  assert f"removing {checkpoints}/8{TMP}" in out
  assert re.search(rf"taking over the lock of MODEL_DIR .* pid {dead}\b", out), out[-3000:]
  assert not os.path.exists(os.path.join(model_dir, run_lock.LOCK_NAME))


def test_two_trainers_on_one_model_dir(base_run, tmp_path):
  model_dir = _copy(base_run, tmp_path)
  logged_before = len(_metric_steps(model_dir))
  checkpoints = os.path.join(model_dir, "checkpoints")
  sums = {step: _checksum(os.path.join(checkpoints, str(step))) for step in _steps(model_dir)}
  cmd = _train(model_dir, "--gin.TRAIN_STEPS=100000",
               "--gin.CheckpointConfig.save_every_steps=100000")
  procs = [_popen(cmd, tmp_path / f"{i}.log") for i in range(2)]
  try:
    deadline = time.monotonic() + TIMEOUT
    while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
      time.sleep(0.1)
    [refused] = [i for i, p in enumerate(procs) if p.poll() is not None]
    holder = procs[1 - refused]
    out = (tmp_path / f"{refused}.log").read_text()
    assert procs[refused].returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    [error] = _errors(out)
    assert "is in use by another training run" in error and f"pid {holder.pid}," in error
    assert f"host {os.uname().nodename}" in error and "started 20" in error
    # The holder trains on, undisturbed; stop it the way a preemption does.
    while len(_metric_steps(model_dir)) < logged_before + 2 and holder.poll() is None:
      time.sleep(0.1)
    holder.send_signal(signal.SIGTERM)
    holder.wait(timeout=120)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  out = (tmp_path / f"{1 - refused}.log").read_text()
  assert holder.returncode == 128 + signal.SIGTERM, out[-3000:]
  new_steps = _metric_steps(model_dir)[logged_before:]
  assert new_steps == list(range(7, 7 + len(new_steps)))  # one writer: each step once
  assert _steps(model_dir)[-1] == new_steps[-1] and _tmp_folders(model_dir) == []
  for step, digest in sums.items():
    if step in _steps(model_dir):
      assert _checksum(os.path.join(checkpoints, str(step))) == digest
  assert not os.path.exists(os.path.join(model_dir, run_lock.LOCK_NAME))  # released


def test_eval_falls_back_past_a_corrupt_newest_checkpoint(base_run, tmp_path):
  model_dir = _copy(base_run, tmp_path)
  newest, older = _steps(model_dir)[-1], _steps(model_dir)[-2]
  for data in glob.glob(os.path.join(model_dir, "checkpoints", str(newest), "params", "d", "*")):
    os.truncate(data, 8)  # array data cut short: read errors in every pending read
  before = _checksum(os.path.join(model_dir, "checkpoints"))
  proc = subprocess.run(
      [sys.executable, "-m", "xlt", "eval", "--gin_file=gin/experiments/demo_eval.gin",
       f"--gin.CHECKPOINT_PATH='{model_dir}'",
       "--gin.MIXTURE_OR_TASK_NAME='demo_en_addition__what_is'",
       "--gin.EVALUATORS=['teacher_forced']"],
      cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=TIMEOUT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Known gap (docs/reliability.md): tensorstore's late read callbacks into orbax's closed
  # event loop still print "Event loop is closed" tracebacks; no other traceback may appear.
  tracebacks = proc.stderr.count("Traceback (most recent call last)")
  assert tracebacks == proc.stderr.count("RuntimeError: Event loop is closed"), proc.stderr[-3000:]
  assert re.search(rf"step {newest} \(.*\) unreadable; falling back to step {older}",
                   proc.stderr), proc.stderr[-3000:]
  [results] = glob.glob(os.path.join(model_dir, "eval", "*", "results.json"))
  with open(results) as f:
    assert json.load(f)["step"] == older
  assert _checksum(os.path.join(model_dir, "checkpoints")) == before  # readers move nothing


# ---------------------------------------------------------------- the lock, in-process

HOLD = ("import sys, time; from xlt import run_lock; run_lock.acquire(sys.argv[1]); "
        "print('held', flush=True); time.sleep(60)")


def test_lock_held_by_a_live_process_is_refused(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO_ROOT,
                            env=subprocess_env(), stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(run_lock.RunLockedError, match=rf"pid {holder.pid}, started 20"):
      run_lock.acquire(str(tmp_path))
  finally:
    holder.kill()
    holder.wait()
  # Killed (SIGKILL): the kernel dropped its flock; the file it left is taken over.
  lock = run_lock.acquire(str(tmp_path))
  lock.release()
  assert not (tmp_path / run_lock.LOCK_NAME).exists()


def test_bucket_lease_refuses_a_live_one_and_takes_over_an_expired_one(tmp_path, monkeypatch,
                                                                        caplog):
  monkeypatch.setattr(run_lock, "SETTLE_SECONDS", 0.0)
  first = run_lock.RunLock(str(tmp_path))
  first._acquire_lease()  # what a gs:// MODEL_DIR uses
  try:
    with pytest.raises(run_lock.RunLockedError, match=rf"pid {os.getpid()}"):
      run_lock.RunLock(str(tmp_path))._acquire_lease()
    lease = json.loads((tmp_path / run_lock.LOCK_NAME).read_text())
    lease.update(expires=time.time() - 1, host="another-host")  # its holder stopped renewing
    (tmp_path / run_lock.LOCK_NAME).write_text(json.dumps(lease))
    second = run_lock.RunLock(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="xlt.run_lock"):
      second._acquire_lease()
    assert any("taking over the lock" in r.getMessage() and "another-host" in r.getMessage()
               for r in caplog.records)
    second.release()
    assert not (tmp_path / run_lock.LOCK_NAME).exists()
  finally:
    first._stop_refresh.set()
