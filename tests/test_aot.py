"""`xlt compile`: the ahead-of-time memory check counts shards right and fails clearly."""
from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from conftest import REPO_ROOT, subprocess_env
from xlt import aot, cli
from xlt.models import TINY, Transformer

TINY_RUN = ["--gin_file=gin/experiments/demo.gin", "--gin_file=gin/local_tiny.gin"]
# Written out here, not imported, so the expected count is independent of partitioning.py.
RULES = {"vocab": "model", "embed": "fsdp", "mlp": "model", "heads": "model"}


def _compile(capsys, *argv):
  code = cli.main(["compile", *argv])
  captured = capsys.readouterr()
  assert "Traceback" not in captured.err
  return code, captured.out, captured.err


def _row_bytes(out: str, label: str) -> int:
  m = re.search(rf"^  {label}\s+\S+ \S+\s+([\d,]+)", out, re.MULTILINE)
  assert m, f"no {label!r} row in:\n{out}"
  return int(m.group(1).replace(",", ""))


def _tiny_params():
  """The tiny model's parameters with their logical names, from eval_shape of init."""
  tokens = jnp.ones((1, 4), jnp.int32)
  return jax.eval_shape(lambda: Transformer(TINY).init(jax.random.key(0), tokens, tokens))["params"]


def _expected_bytes(mesh_shape: dict[str, int]) -> tuple[int, int]:
  """(bytes per device, total bytes) of the float32 tiny model under RULES."""
  per_device = total = 0
  for leaf in jax.tree.leaves(_tiny_params(), is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned)):
    value = leaf.value if isinstance(leaf, nn.LogicallyPartitioned) else leaf
    names = leaf.names if isinstance(leaf, nn.LogicallyPartitioned) else (None,) * value.ndim
    assert value.dtype == jnp.float32
    total += value.size * 4
    shard = [dim // mesh_shape.get(RULES.get(name), 1) for dim, name in zip(value.shape, names)]
    per_device += math.prod(shard) * 4
  return per_device, total


def test_tiny_model_on_eight_fake_devices(capsys):
  code, out, err = _compile(capsys, *TINY_RUN, "--gin.MeshConfig.fsdp=4",
                            "--gin.MeshConfig.model=2", "--topology", "local")
  assert code == 0, err
  assert "mesh: data=1 x fsdp=4 x model=2" in out
  assert "batch: global 8" in out and "per device 2 rows" in out
  for label in ("parameters", "optimizer state", "activations / temporaries", "total"):
    assert f"  {label}" in out
  per_device, total = _expected_bytes({"data": 1, "fsdp": 4, "model": 2})
  params = _row_bytes(out, "parameters")
  assert params == per_device
  assert params < total
  assert f"(whole model {aot.human(total)})" in out
  assert _row_bytes(out, "total") > params + _row_bytes(out, "optimizer state")
  assert "unlimited" in out  # CPU devices: no budget unless --memory_gib


def test_peqa_llama_compiles_with_optimizer_state_for_the_scales_only(capsys):
  """A decoder-only model and a PEQA run go through the same check: 4-bit weights, and
  the optimizer holds moments for the scales alone."""
  llama = TINY_RUN + ["--gin_file=gin/models/llama_tiny.gin", "--gin.MeshConfig.fsdp=4",
                      "--gin.MeshConfig.model=2", "--topology", "local"]
  code, out, err = _compile(capsys, *llama)
  assert code == 0, err
  full_params, full_opt = _row_bytes(out, "parameters"), _row_bytes(out, "optimizer state")
  code, out, err = _compile(capsys, *llama, "--gin_file=gin/runs/peqa.gin",
                            "--gin.LlamaConfig.quant_group_size=32")
  assert code == 0, err
  assert _row_bytes(out, "parameters") < 0.5 * full_params
  # Per device: the scales are 1/32 of the weights (group 32) and split only over their
  # output axis (model = 2), the weights' moments over all 8 devices: about 4/32 of it.
  assert _row_bytes(out, "optimizer state") < 0.15 * full_opt


_ONE_DEVICE = textwrap.dedent("""
    import sys
    for name in ("tensorflow", "seqio", "tensorflow_text", "tensorflow_datasets"):
      sys.modules[name] = None  # the check must not need the data layer
    from xlt import cli
    code = cli.main(sys.argv[1:])
    assert sys.modules["tensorflow"] is None and sys.modules["seqio"] is None
    sys.exit(code)
""")


def test_one_device_mesh_holds_every_parameter_without_tensorflow():
  argv = ["compile", *TINY_RUN, "--gin.MeshConfig.fsdp=1", "--gin.MeshConfig.model=1"]
  proc = subprocess.run([sys.executable, "-c", _ONE_DEVICE, *argv], cwd=REPO_ROOT,
                        env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "mesh: data=1 x fsdp=1 x model=1" in proc.stdout
  _, total = _expected_bytes({})
  assert _row_bytes(proc.stdout, "parameters") == total


def test_over_budget_fails_naming_the_budget(capsys):
  code, out, err = _compile(capsys, *TINY_RUN, "--topology=local", "--memory_gib", "0.0001")
  assert code == cli.EXIT_FAILED
  assert "DOES NOT FIT" in out
  assert "does not fit" in err and "budget" in err and "--memory_gib 0.0001" in err
  # The state alone is over: the first suggestion is to shard it further.
  assert "parameters + optimizer state alone" in err
  assert err.index("MeshConfig") < err.index("remat_policy")


def test_over_budget_by_activations_suggests_microbatches_first(capsys):
  # State ~0.36 MiB per device fits in 1 MiB; the activations (~2 MiB) do not.
  code, _, err = _compile(capsys, *TINY_RUN, "--gin.MeshConfig.fsdp=4", "--gin.MeshConfig.model=2",
                          "--memory_gib", str(1 / 1024))
  assert code == cli.EXIT_FAILED
  assert "activations / temporaries take" in err
  assert "--gin.train.num_microbatches=2" in err and "--gin.BATCH_SIZE=4" in err
  assert err.index("num_microbatches") < err.index("MeshConfig")


def test_tpu_topology_compiles_or_says_libtpu_is_missing(capsys):
  code, out, err = _compile(capsys, *TINY_RUN, "--topology", "v4-16")
  if importlib.util.find_spec("libtpu") is None:
    assert code == cli.EXIT_USAGE
    assert "libtpu" in err and "--topology local" in err
    assert "--xla_force_host_platform_device_count" in err
  else:
    assert code == 0, err
    assert "8 x TPU v4" in out and "32.00 GiB" in out


def test_missing_libtpu_message(capsys, monkeypatch):
  from jax.experimental import topologies

  def no_tpu(*args, **kwargs):
    raise RuntimeError("JAX TPU support not installed; cannot generate TPU topology.")

  monkeypatch.setattr(topologies, "get_topology_desc", no_tpu)
  monkeypatch.setattr(aot.importlib.util, "find_spec", lambda name: None)
  monkeypatch.delenv("TPU_LIBRARY_PATH", raising=False)
  code, _, err = _compile(capsys, *TINY_RUN, "--topology", "v5e-256")
  assert code == cli.EXIT_USAGE
  assert "libtpu" in err and "not installed" in err
  assert "--topology local" in err and "--memory_gib 16" in err


@pytest.mark.parametrize("name", ["v9-32", "tpu", "v4-33", "v5e-12", "v4:2x2", "local8"])
def test_bad_topology_is_a_usage_error(capsys, name):
  code, out, err = _compile(capsys, *TINY_RUN, "--topology", name)
  assert code == cli.EXIT_USAGE
  assert name in err and out == ""


@pytest.mark.parametrize("name, grid", [
    ("v4-8", ("v4", (2, 2, 1))), ("v4-32", ("v4", (2, 2, 4))), ("v4-128", ("v4", (4, 4, 4))),
    ("v5p-128", ("v5p", (4, 4, 4))), ("v5e-8", ("v5e", (2, 4))), ("v5e-256", ("v5e", (16, 16))),
    ("v5litepod-16", ("v5e", (4, 4))), ("v6e-64", ("v6e", (8, 8))), ("v4:8x8x12", ("v4", (8, 8, 12))),
])
def test_slice_names_to_chip_grids(name, grid):
  assert aot.parse_tpu_name(name) == grid


def test_unset_lengths_are_still_required_but_model_dir_is_not(capsys):
  code, _, err = _compile(capsys, "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/train.gin")
  assert code == cli.EXIT_USAGE
  assert "not set: TASK_FEATURE_LENGTHS." in err  # MODEL_DIR, TRAIN_STEPS, ... not listed


def test_batch_that_does_not_split_over_the_mesh(capsys):
  code, _, err = _compile(capsys, *TINY_RUN, "--gin.BATCH_SIZE=6")
  assert code == cli.EXIT_USAGE
  assert "BATCH_SIZE=6" in err and "data x fsdp = 8" in err


def test_shard_bytes_rounds_uneven_splits_up():
  mesh = Mesh(np.asarray(jax.devices()[:8]).reshape(1, 4, 2), ("data", "fsdp", "model"))
  sharding = NamedSharding(mesh, P("fsdp", "model"))
  assert aot.shard_bytes((8, 6), jnp.float32, sharding) == 2 * 3 * 4
  assert aot.shard_bytes((10, 6), jnp.bfloat16, sharding) == 3 * 3 * 2
  assert aot.shard_bytes((10, 6), jnp.float32, NamedSharding(mesh, P())) == 240


def test_compiler_out_of_memory_is_reported_with_its_size():
  message = ("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
             "temporaries (65.17G) exceeds available HBM (30.75G).")
  assert aot.oom_temp_bytes(message) == int(65.17 * 2**30)
  topology = aot.Topology("v4-32", tuple(jax.devices()[:1]), 32 * 2**30, "v4: 32 GiB HBM per chip")
  config = aot.StepConfig(model=TINY, task_feature_lengths={"inputs": 8, "targets": 4},
                          batch_size=64)  # 4 rows per device: accumulation can help
  report = aot.MemoryReport(
      topology=topology, config=config, mesh_shape={"data": 1, "fsdp": 16, "model": 1},
      num_params=10, params_bytes=2**30, params_total_bytes=16 * 2**30, opt_state_bytes=2**29,
      opt_state_total_bytes=8 * 2**29, batch_bytes=1024, backend=None, compile_error=message)
  assert not report.fits
  assert report.total_bytes == 2**30 + 2**29 + 1024 + int(65.17 * 2**30)
  assert "65.17 GiB" in report.table()
  explanation = report.explain()
  assert "ran out of memory for v4-32" in explanation and "(30.75G). Try:" in explanation
  assert "num_microbatches=2" in explanation


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                    reason="nothing to quiet: libtpu is not installed")
def test_xlt_commands_keep_libtpu_quiet_off_a_tpu_vm():
  """With libtpu installed, JAX loads it in every `xlt` process; off a TPU VM it must not
  print its metadata-server errors (nor lock other processes out)."""
  env = {k: v for k, v in subprocess_env().items()
         if k != "JAX_PLATFORMS" and not k.startswith(("TPU_", "ALLOW_MULTIPLE_LIBTPU"))}
  proc = subprocess.run([sys.executable, "-m", "xlt", "compile", *TINY_RUN], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "topology: local: 1 x cpu" in proc.stdout
  assert "TPU_WORKER_HOSTNAMES" not in proc.stderr and "libtpu_lockfile" not in proc.stderr
