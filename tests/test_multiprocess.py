"""Two `xlt train` processes over 127.0.0.1 (jax.distributed, gloo) match one process.

Unshuffled and unpacked, a single task is split by example: host p reads examples
i = p (mod 2), so each global batch holds the examples of the one-process batch in
another order and the (permutation-invariant) loss must agree. A mixture would not do:
every host samples tasks with the same seed from its own shard, a different draw.
"""
import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np

from conftest import REPO_ROOT, subprocess_env
from xlt import checkpoints, partitioning
from xlt.models import TINY
from xlt.optimizers import OptimizerConfig
from xlt.train_state import state_shardings

STEPS = 3
RUN = [sys.executable, "-m", "xlt", "train", "--gin_file=gin/experiments/demo.gin",
       "--gin_file=gin/local_tiny.gin", "--gin.train.progress_bar=False",
       f"--gin.TRAIN_STEPS={STEPS}", "--gin.BATCH_SIZE=8", "--gin.SHUFFLE_TRAIN_EXAMPLES=False",
       "--gin.PACK=False", "--gin.MIXTURE_OR_TASK_NAME='demo_en_addition__what_is'",
       # Cosine decay needs warmup < TRAIN_STEPS; lr is 0 only at step 1.
       "--gin.Schedule.warmup_steps=1"]
TIMEOUT = 300


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_all(jobs, timeout=TIMEOUT):
  """Starts every (cmd, env, log_path) at once; waits for all. If one fails, the others
  (stuck in a collective) are killed. Returns the exit codes."""
  procs = []
  try:
    for cmd, env, log_path in jobs:
      with open(log_path, "w") as log:
        procs.append(subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      codes = [p.poll() for p in procs]
      if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
        break
      time.sleep(0.1)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
      p.wait()
  return [p.returncode for p in procs]


def _metrics(model_dir):
  with open(os.path.join(model_dir, "train_metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _final_params(model_dir):
  mesh = partitioning.make_mesh(partitioning.MeshConfig(), jax.devices()[:1])
  tx, _ = OptimizerConfig(name="adamw").build()
  abstract, shardings, _ = state_shardings(TINY, tx, mesh, partitioning.DEFAULT_RULES)
  return checkpoints.restore_params(model_dir, abstract.params, shardings.params)


def test_two_processes_match_one(tmp_path):
  two, one = str(tmp_path / "two"), str(tmp_path / "one")
  port = _free_port()
  logs = [tmp_path / f"process_{i}.log" for i in range(2)]
  jobs = [(RUN + [f"--gin.MODEL_DIR='{two}'"],
           subprocess_env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                          JAX_PROCESS_ID=str(i)), logs[i]) for i in range(2)]
  codes = _run_all(jobs)
  outputs = [log.read_text() for log in logs]
  assert codes == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
  assert "(2 cpu devices, 2 processes)" in outputs[0]

  codes = _run_all([(RUN + [f"--gin.MODEL_DIR='{one}'"], subprocess_env(),
                     tmp_path / "single.log")])
  assert codes == [0], (tmp_path / "single.log").read_text()[-3000:]

  # One checkpoint directory, written by both processes (each its own OCDBT shard).
  step_dir = os.path.join(two, "checkpoints", str(STEPS))
  assert os.path.isfile(os.path.join(step_dir, "_CHECKPOINT_METADATA"))
  assert {d for d in os.listdir(os.path.join(step_dir, "params")) if d.startswith("ocdbt.")} == {
      "ocdbt.process_0", "ocdbt.process_1"}

  distributed, single = _metrics(two), _metrics(one)  # only process 0 writes metrics
  assert [m["step"] for m in distributed] == [m["step"] for m in single] == [1, 2, 3]
  for d, s in zip(distributed, single):
    assert d["target_tokens"] == s["target_tokens"], d["step"]  # the same examples
    assert abs(d["loss"] - s["loss"]) <= 1e-5, (d["step"], d["loss"], s["loss"])

  params_two, step_two = _final_params(two)
  params_one, step_one = _final_params(one)
  assert step_two == step_one == STEPS
  for a, b in zip(jax.tree.leaves(params_two), jax.tree.leaves(params_one)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_each_host_reads_only_its_shard():
  """What every process of a multi-host run gets from the data pipeline: disjoint
  shards (seqio.ShardInfo) that together are the whole split, batch_size / hosts rows."""
  from xlt.data import DataConfig
  from xlt.data.pipeline import BatchIterator
  from xlt.data.registry import get_task_or_mixture, use_vocabulary

  config = DataConfig("demo_en_addition__what_is", {"inputs": 64, "targets": 8}, batch_size=8,
                      shuffle=False, pack=False, num_epochs=1, vocabulary="byte")
  use_vocabulary("byte", get_task_or_mixture(config.mixture_or_task_name), TINY.vocab_size)

  def rows(index, count):
    batches = list(BatchIterator(config, index, count, drop_remainder=False))
    assert all(len(b["encoder_input_tokens"]) <= 8 // count for b in batches)
    return [tuple(x) + tuple(y) for b in batches
            for x, y in zip(b["encoder_input_tokens"], b["decoder_target_tokens"])]

  whole = rows(0, 1)
  first, second = rows(0, 2), rows(1, 2)
  assert len(whole) > 100
  # Unshuffled, host p keeps examples p, p + 2, ... of the split, and nothing else.
  assert first == whole[0::2] and second == whole[1::2]
