"""MODEL_DIR on a bucket: the real `xlt train`, `xlt eval` and `xlt infer` with gs:// paths
against a local Google Cloud Storage server (tests/gcs_emulator.py). Checkpoints, the
resume, metrics, TensorBoard events and results land in the bucket and nowhere on disk.

The clients are the production ones: epath -> tf.io.gfile (TensorFlow is installed with the
data layer), orbax -> tensorstore's GCS driver, google-cloud-storage for orbax's listing and
tensorboardX.
"""
import json
import subprocess
import sys

import pytest

import gcs_emulator
from conftest import REPO_ROOT, subprocess_env

BUCKET = "xlt-test-bucket"
RUN_DIR = f"gs://{BUCKET}/runs/demo"
TINY = [f"--gin_file={REPO_ROOT}/gin/experiments/demo.gin",
        f"--gin_file={REPO_ROOT}/gin/local_tiny.gin", "--gin.train.progress_bar=False",
        "--gin.CheckpointConfig.save_every_steps=2", "--gin.Schedule.warmup_steps=1",
        f"--gin.MODEL_DIR='{RUN_DIR}'"]


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
  server = gcs_emulator.start(BUCKET, str(tmp_path_factory.mktemp("gcs_certs")))
  yield server
  server.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return tmp_path_factory.mktemp("cwd")  # the commands run here: nothing may appear in it


def _xlt(gcs, workdir, *args, timeout=300):
  proc = subprocess.run([sys.executable, "-m", "xlt", *args], cwd=workdir,
                        env=subprocess_env(**gcs.env()), capture_output=True, text=True,
                        timeout=timeout)
  return proc.returncode, proc.stdout + proc.stderr


def _metrics_steps(gcs):
  lines = gcs.read("runs/demo/train_metrics.jsonl").decode().splitlines()
  return [json.loads(line)["step"] for line in lines]


@pytest.fixture(scope="module")
def trained(gcs, workdir):
  """4 steps, then the same command with TRAIN_STEPS=6: a resume from the bucket."""
  code, out = _xlt(gcs, workdir, "train", *TINY, "--gin.TRAIN_STEPS=4")
  assert code == 0, out[-4000:]
  first = {"objects": gcs.objects("runs/demo/"), "steps": _metrics_steps(gcs)}
  code, out = _xlt(gcs, workdir, "train", *TINY, "--gin.TRAIN_STEPS=6")
  assert code == 0, out[-4000:]
  return first, out


def test_train_writes_the_run_into_the_bucket(gcs, workdir, trained):
  first, _ = trained
  names = first["objects"]
  assert "runs/demo/config.gin" in names
  for step in (2, 4):
    assert f"runs/demo/checkpoints/{step}/_CHECKPOINT_METADATA" in names
    assert any(n.startswith(f"runs/demo/checkpoints/{step}/params/") for n in names)
  assert any(n.startswith("runs/demo/tensorboard/train/events.out.tfevents.") for n in names)
  assert first["steps"] == [1, 2, 3, 4]
  assert "MODEL" in gcs.read("runs/demo/config.gin").decode()
  assert list(workdir.iterdir()) == []  # no local ./gs:/... directory


def test_rerun_resumes_from_the_bucket_and_keeps_the_metrics(gcs, workdir, trained):
  _, out = trained
  assert f"resumed from {RUN_DIR}/checkpoints at step 4" in out
  assert _metrics_steps(gcs) == [1, 2, 3, 4, 5, 6]  # the first run's lines are kept
  steps = {n.split("/")[3] for n in gcs.objects("runs/demo/checkpoints/")}
  assert {"4", "6"} <= steps
  assert list(workdir.iterdir()) == []


def test_eval_and_infer_read_the_checkpoint_and_write_results_there(gcs, workdir, trained):
  code, out = _xlt(gcs, workdir, "eval", f"--gin_file={REPO_ROOT}/gin/experiments/demo_eval.gin",
                   f"--gin.CHECKPOINT_PATH='{RUN_DIR}'", "--gin.TASK_FEATURE_LENGTHS=None")
  assert code == 0, out[-4000:]
  # <mixture>-<split>-step<N>-<decode method>-<settings hash>/ (xlt.evaluation)
  folder = next(n for n in gcs.objects("runs/demo/eval/")
                if n.startswith("runs/demo/eval/demo_mix-validation-step6-greedy-")
                and n.endswith("/results.json")).rsplit("/", 1)[0] + "/"
  written = set(gcs.objects(folder))
  assert {folder + f for f in ("results.json", "results.md", "results.png")} <= written
  assert folder + "predictions/demo_en_addition__what_is.jsonl" in written
  assert not [n for n in written if n.endswith(".tmp")]
  results = json.loads(gcs.read(folder + "results.json"))
  assert results["step"] == 6
  assert results["tasks"]["demo_en_addition__what_is"]["metrics"]["examples"] > 0

  predictions = f"{RUN_DIR}/infer/predictions.jsonl"
  code, out = _xlt(gcs, workdir, "infer",
                   f"--gin_file={REPO_ROOT}/gin/experiments/demo_infer.gin",
                   f"--gin.CHECKPOINT_PATH='{RUN_DIR}'", f"--gin.OUTPUT_PATH='{predictions}'",
                   "--gin.MIXTURE_OR_TASK_NAME='demo_en_addition__what_is'",
                   "--gin.infer.max_decode_length=4")
  assert code == 0, out[-4000:]
  lines = gcs.read("runs/demo/infer/predictions.jsonl").decode().splitlines()
  assert len(lines) > 0 and {"task", "inputs", "targets", "prediction"} <= set(json.loads(lines[0]))
  assert "runs/demo/infer/predictions.jsonl.tmp" not in gcs.objects("runs/demo/infer/")
  assert list(workdir.iterdir()) == []

