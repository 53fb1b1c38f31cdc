"""launch/local.sh prints the exact command it would run."""
import shlex
import subprocess

from conftest import REPO_ROOT


def test_local_dry_run_prints_the_train_command():
  proc = subprocess.run(
      ["bash", "launch/local.sh", "--dry_run", "gin/experiments/demo.gin",
       "--gin.MODEL_DIR='/tmp/run dir'"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=30,
      env={"PYTHON": "python3", "PATH": "/usr/bin:/bin"})
  assert proc.returncode == 0, proc.stderr
  argv = shlex.split(proc.stdout)
  assert argv == ["python3", "-m", "xlt", "train", "--gin_file=gin/experiments/demo.gin",
                  "--gin.MODEL_DIR='/tmp/run dir'"]


def test_local_without_gin_file_is_a_usage_error():
  proc = subprocess.run(["bash", "launch/local.sh"], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=30)
  assert proc.returncode == 2 and "usage" in proc.stderr
