"""Faults around `xlt eval` / `xlt infer` outputs: results are keyed by their settings,
written whole or not at all, never replaced unless asked, and bad output paths or empty
data are one-line errors (exit 2) before the model is loaded.

One randomly initialised tiny checkpoint and one greedy evaluation of it are shared by
every case (each works on a copy); only the kill needs a child process.
"""
import hashlib
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, subprocess_env
from xlt import checkpoints, cli, optimizers, partitioning
from xlt.models import TINY
from xlt.train_state import create_sharded_state

EVAL = ["eval", "--gin_file=gin/experiments/demo_eval.gin",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 8}"]  # one compilation
INFER = ["infer", "--gin_file=gin/experiments/demo_infer.gin",
         "--gin.MIXTURE_OR_TASK_NAME='demo_en_addition__what_is'", "--gin.MAX_DECODE_LENGTH=4"]
LOADED = "loaded "  # xlt.loaded_model logs this once the parameters are restored


def _checksums(folder):
  folder = pathlib.Path(folder)
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


def _error_line(stderr):
  """The one `error:` line; no traceback."""
  assert "Traceback" not in stderr, stderr[-3000:]
  lines = [line for line in stderr.splitlines() if line.startswith("error:")]
  assert len(lines) == 1, stderr[-3000:]
  return lines[0]


def _result_folders(run):
  return sorted(p.name for p in (run / "eval").iterdir())


def _xlt(capsys, caplog, *args):
  """In-process `xlt ...`: (exit code, stderr, whether the model was loaded)."""
  caplog.clear()
  code = cli.main(list(args))
  err = capsys.readouterr().err
  return code, err, any(r.getMessage().startswith(LOADED) for r in caplog.records)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  """A run directory with one checkpoint (step 7) and its greedy demo_mix evaluation."""
  run = tmp_path_factory.mktemp("faults_eval") / "run"
  mesh = partitioning.make_mesh(partitioning.MeshConfig())
  tx, _ = optimizers.OptimizerConfig().build()
  config = TINY.replace(dtype="float32")
  state, _, _ = create_sharded_state(config, tx, mesh, partitioning.DEFAULT_RULES, seed=5)
  ckpt = checkpoints.Checkpointer(str(run / "checkpoints"))
  ckpt.save(7, state, {"batches_consumed": 7}, config.to_dict(), force=True)
  ckpt.wait()
  ckpt.close()
  assert cli.main(EVAL + [f"--gin.CHECKPOINT_PATH='{run}'"]) == 0
  return run


@pytest.fixture
def run(evaluated, tmp_path, caplog):
  caplog.set_level(logging.INFO)
  copy = tmp_path / "run"
  shutil.copytree(evaluated, copy)
  return copy


def test_beam_rerun_adds_a_folder_and_keeps_greedy_results(run, capsys, caplog):
  (greedy,) = _result_folders(run)
  assert greedy.startswith("demo_mix-validation-step7-greedy-")
  before = _checksums(run / "eval" / greedy)
  code, err, _ = _xlt(capsys, caplog, *EVAL, f"--gin.CHECKPOINT_PATH='{run}'",
                      "--gin.eval/DecodeConfig.method='beam'",
                      "--gin.eval/DecodeConfig.num_beams=2")
  assert code == 0, err[-3000:]
  folders = _result_folders(run)
  assert len(folders) == 2 and greedy in folders, folders
  beam = next(f for f in folders if f != greedy)
  assert beam.startswith("demo_mix-validation-step7-beam-")
  assert _checksums(run / "eval" / greedy) == before
  config = json.loads((run / "eval" / beam / "results.json").read_text())["config"]
  assert config["decode"] == {"method": "beam", "num_beams": 2, "length_penalty": 0.0}
  assert config["task_feature_lengths"] == {"inputs": 32, "targets": 8}
  assert config["settings_hash"] in beam


def test_same_eval_again_is_refused_before_loading(run, capsys, caplog):
  (folder,) = _result_folders(run)
  before = _checksums(run)
  code, err, loaded = _xlt(capsys, caplog, *EVAL, f"--gin.CHECKPOINT_PATH='{run}'")
  assert code == 2
  line = _error_line(err)
  assert folder in line and "--gin.evaluate.overwrite=True" in line
  assert not loaded
  assert _checksums(run) == before


def test_killed_overwrite_keeps_the_old_result_and_next_start_cleans(run, tmp_path, capsys,
                                                                      caplog):
  (name,) = _result_folders(run)
  folder, tmp = run / "eval" / name, run / "eval" / (name + ".tmp")
  before = _checksums(folder)
  log_path = tmp_path / "eval.log"
  cmd = [sys.executable, "-m", "xlt", *EVAL, f"--gin.CHECKPOINT_PATH='{run}'",
         "--gin.evaluate.overwrite=True"]
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=subprocess_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
      deadline = time.monotonic() + 240
      while not list((tmp / "predictions").glob("*.jsonl")):  # the first task is done
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, "no predictions in the tmp folder"
        time.sleep(0.02)
      proc.send_signal(signal.SIGKILL)
      proc.wait(timeout=60)
    finally:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert _checksums(folder) == before  # the complete result is untouched
  assert tmp.is_dir()

  old_inode = (folder / "results.json").stat().st_ino
  code, err, _ = _xlt(capsys, caplog, *EVAL, f"--gin.CHECKPOINT_PATH='{run}'",
                      "--gin.evaluate.overwrite=True")
  assert code == 0, err[-3000:]
  assert _result_folders(run) == [name]  # the stale tmp is gone, nothing else appeared
  results = json.loads((folder / "results.json").read_text())
  assert len(results["tasks"]) == 5
  assert (folder / "results.json").stat().st_ino != old_inode  # replaced, as asked
  assert sorted(p.name for p in (folder / "predictions").iterdir()) == \
      sorted(f"{t}.jsonl" for t in results["tasks"])


def test_empty_dataset_is_refused_and_writes_nothing(run, tmp_path, monkeypatch, capsys,
                                                     caplog):
  data = tmp_path / "ko_data"
  (data / "beep").mkdir(parents=True)
  (data / "beep" / "dev.tsv").write_text("comments\tcontain_gender_bias\tbias\thate\n")
  monkeypatch.setenv("XLT_KO_DATA_DIR", str(data))
  before = _checksums(run)
  code, err, loaded = _xlt(capsys, caplog, *EVAL, f"--gin.CHECKPOINT_PATH='{run}'",
                           "--gin.MIXTURE_OR_TASK_NAME='ko_beep__hate_level_options'",
                           "--gin.evaluate.overwrite=True")
  assert code == 2
  assert "beep" in _error_line(err)
  assert not loaded
  assert _checksums(run) == before and len(_result_folders(run)) == 1


def _unwritable_folder(tmp_path):
  """A folder this process cannot write: read-only bits, or (as root, who ignores them)
  a kernel file system that refuses new files."""
  folder = tmp_path / "read_only"
  folder.mkdir()
  folder.chmod(0o555)
  for candidate in (folder, pathlib.Path("/sys/kernel")):
    try:
      (candidate / "probe").write_text("x")
      (candidate / "probe").unlink()
    except OSError:
      return candidate
  pytest.skip("no folder here refuses writes (root on a system without /sys)")


@pytest.mark.parametrize("where", ["directory", "read_only"])
def test_infer_to_a_bad_output_path_fails_before_decoding(where, run, tmp_path, capsys,
                                                          caplog):
  if where == "directory":
    output = tmp_path / "preds"
    output.mkdir()
  else:
    output = _unwritable_folder(tmp_path) / "preds.jsonl"
  start = time.monotonic()
  code, err, loaded = _xlt(capsys, caplog, *INFER, f"--gin.CHECKPOINT_PATH='{run}'",
                           f"--gin.OUTPUT_PATH='{output}'")
  assert code == 2
  assert str(output if where == "directory" else output.parent) in _error_line(err)
  assert not loaded and time.monotonic() - start < 30
  assert not list(tmp_path.rglob("*.tmp")) and not list(output.parent.glob("*.tmp"))


def test_infer_keeps_an_existing_output_unless_asked(run, tmp_path, capsys, caplog):
  output = tmp_path / "preds.jsonl"
  output.write_text("earlier predictions\n")
  code, err, loaded = _xlt(capsys, caplog, *INFER, f"--gin.CHECKPOINT_PATH='{run}'",
                           f"--gin.OUTPUT_PATH='{output}'")
  assert code == 2 and not loaded
  line = _error_line(err)
  assert str(output) in line and "--gin.infer.overwrite=True" in line
  assert output.read_text() == "earlier predictions\n"

  stale = tmp_path / "preds.jsonl.tmp"  # left by a killed run
  stale.write_text('{"half a line')
  code, err, _ = _xlt(capsys, caplog, *INFER, f"--gin.CHECKPOINT_PATH='{run}'",
                      f"--gin.OUTPUT_PATH='{output}'", "--gin.infer.overwrite=True")
  assert code == 0, err[-3000:]
  rows = [json.loads(line) for line in output.read_text().splitlines()]
  assert len(rows) == 200 and {"task", "inputs", "targets", "prediction"} <= set(rows[0])
  assert not stale.exists()
