"""Ahead-of-time memory check: compile the train step for a topology, allocate nothing.

`xlt compile` answers "does this configuration fit on that slice?" before a job waits
for one: it reads the same gin bindings as `xlt train`, builds the mesh over the target
devices (this process's, or a TPU slice described by libtpu), lowers and compiles the
jitted train step on abstract inputs (eval_shape of the sharded state, ShapeDtypeStruct
batches) and reports per-device memory. Parameters and optimizer state are counted from
the abstract shapes and their shardings; activations and temporaries are what the
compiler's buffer assignment reports (`compiled.memory_analysis()`).

No TensorFlow / SeqIO: the batch is synthetic, shaped like EncDecFeatureConverter output.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import inspect
import math
import os
import re
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding

from xlt import losses, partitioning, tpu_env, train_state
from xlt import models
from xlt.models import ModelConfig
from xlt.optimizers import OptimizerConfig
from xlt.train_step import jit_train_step, make_train_step

GIB = 2**30

# HBM per chip of the TPU generations a slice name may start with (GiB).
TPU_HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32}
# (dimensions of the chip grid, slice-name count per chip, libtpu chip config). v4 and v5p
# slices are named by TensorCores (2 per chip, one megacore device); v5e / v6e by chips.
_TPU_GENERATIONS = {"v4": (3, 2, "megacore"), "v5p": (3, 2, None), "v5e": (2, 1, None),
                    "v6e": (2, 1, None)}
_TPU_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "v6": "v6e"}
# Local accelerators by device_kind substring (most specific first), when the runtime
# does not report its allocator limit.
_DEVICE_KIND_GIB = (("H200", 141), ("H100", 80), ("A100-SXM4-80GB", 80), ("A100", 40),
                    ("TPU v5 lite", 16), ("TPU v6 lite", 32), ("TPU v5", 95), ("TPU v4", 32))

# Macros `train` needs that do not change the compiled step: left %gin.REQUIRED they get
# a placeholder, so `xlt compile` runs on a bare model + run gin file.
_NOT_NEEDED_MACROS = {"MODEL_DIR": "None", "MIXTURE_OR_TASK_NAME": "None",
                      "TRAIN_STEPS": "1000000", "INITIAL_CHECKPOINT_PATH": "None"}

TOPOLOGY_HELP = ("'local' (this process's devices), a TPU slice such as v4-32, v5e-256, "
                 "v5p-128, v6e-64 (v4/v5p count TensorCores, v5e/v6e chips), or an explicit "
                 "chip grid such as v4:2x2x4, v5e:16x16")


class TopologyError(ValueError):
  """The --topology name is not one we know how to build (a usage error)."""


class TpuUnavailableError(RuntimeError):
  """A TPU topology was asked for, but libtpu cannot describe it on this machine."""


# --------------------------------------------------------------------------- topology


@dataclasses.dataclass(frozen=True)
class Topology:
  name: str
  devices: tuple[Any, ...]
  budget_bytes: int | None  # per device; None: unlimited
  budget_source: str  # where the budget comes from, for the table

  @property
  def platform(self) -> str:
    return self.devices[0].platform

  @property
  def device_kind(self) -> str:
    return self.devices[0].device_kind


def _chip_grid(generation: str, count: int) -> tuple[int, ...]:
  """The usual chip grid of a power-of-two slice: double the last smallest side."""
  dims, per_chip, _ = _TPU_GENERATIONS[generation]
  if count % per_chip:
    raise TopologyError(f"{generation}-{count}: {generation} slices are named by TensorCores "
                        f"({per_chip} per chip), so the count must be even")
  chips = count // per_chip
  grid = [2, 2, 1] if dims == 3 else [1, 1]
  smallest = math.prod(grid)
  if chips < smallest or chips & (chips - 1):
    raise TopologyError(
        f"{generation}-{count}: no standard chip grid for {chips} chips; give it explicitly, "
        f"e.g. --topology {generation}:{'x'.join(['2'] * dims)}")
  while math.prod(grid) < chips:
    low = min(grid)
    grid[max(i for i, g in enumerate(grid) if g == low)] *= 2
  return tuple(grid)


def parse_tpu_name(name: str) -> tuple[str, tuple[int, ...]]:
  """'v4-32' -> ('v4', (2, 2, 4)); 'v5e:4x8' -> ('v5e', (4, 8)). TopologyError otherwise."""
  m = re.fullmatch(r"(v\d+[a-z]*)-(\d+)", name) or re.fullmatch(r"(v\d+[a-z]*):(\d+(?:x\d+)+)", name)
  if not m:
    raise TopologyError(f"unknown --topology {name!r}; expected {TOPOLOGY_HELP}")
  generation = _TPU_ALIASES.get(m.group(1), m.group(1))
  if generation not in _TPU_GENERATIONS:
    raise TopologyError(f"unknown TPU generation {m.group(1)!r} in --topology {name!r}; "
                        f"known: {', '.join(_TPU_GENERATIONS)}")
  if "-" in name:
    return generation, _chip_grid(generation, int(m.group(2)))
  grid = tuple(int(x) for x in m.group(2).split("x"))
  if len(grid) != _TPU_GENERATIONS[generation][0] or 0 in grid:
    raise TopologyError(f"--topology {name!r}: {generation} chip grids have "
                        f"{_TPU_GENERATIONS[generation][0]} positive sides")
  return generation, grid


def _tpu_devices(name: str, generation: str, grid: tuple[int, ...]) -> tuple[Any, ...]:
  """Devices of a TPU slice described by libtpu, with no TPU attached (compile only)."""
  from jax.experimental import topologies
  _, _, chip_config = _TPU_GENERATIONS[generation]
  kwargs: dict[str, Any] = {}
  if chip_config:
    kwargs["chip_config_name"] = chip_config
  if math.prod(grid) < 4:  # smaller than one 2x2 host
    kwargs["chips_per_host_bounds"] = tuple(grid) + (1,) * (3 - len(grid))
  desc = f"{generation}:{'x'.join(map(str, grid))}"
  tpu_env.quiet_libtpu_off_tpu()
  try:
    topology = topologies.get_topology_desc(topology_name=desc, platform="tpu", **kwargs)
  except Exception as e:  # noqa: BLE001 - libtpu raises RuntimeError or XlaRuntimeError
    if importlib.util.find_spec("libtpu") is None and not os.environ.get("TPU_LIBRARY_PATH"):
      raise TpuUnavailableError(
          f"--topology {name} needs libtpu to describe and compile for a TPU slice, and it "
          "is not installed here (pip install -e \".[tpu]\" installs it; no TPU is needed). "
          "Without it, check the same mesh on fake CPU devices: XLA_FLAGS="
          "--xla_force_host_platform_device_count=N xlt compile ... --topology local "
          f"--memory_gib {TPU_HBM_GIB[generation]}") from None
    raise TpuUnavailableError(f"libtpu could not describe TPU topology {desc} "
                              f"(from --topology {name}): {e}") from None
  return tuple(topology.devices)


def _local_budget(device) -> tuple[int | None, str]:
  """The allocator limit the runtime reports, else the known memory of the device kind."""
  try:
    stats = device.memory_stats()
  except Exception:  # noqa: BLE001 - backends without stats raise or return None
    stats = None
  if stats and stats.get("bytes_limit"):
    return int(stats["bytes_limit"]), f"{device.device_kind}: allocator limit (memory_stats)"
  for key, gib in _DEVICE_KIND_GIB:
    if key in device.device_kind:
      return gib * GIB, f"{device.device_kind}: {gib} GiB"
  return None, f"{device.platform} devices have no known limit; pass --memory_gib"


def resolve_topology(name: str, memory_gib: float | None = None) -> Topology:
  """'local' or a TPU slice name -> its devices and per-device budget (--memory_gib wins)."""
  if memory_gib is not None and not memory_gib > 0:
    raise TopologyError(f"--memory_gib must be positive, got {memory_gib}")
  if name == "local":
    devices = tuple(jax.devices())
    budget, source = _local_budget(devices[0])
  else:
    generation, grid = parse_tpu_name(name)
    devices = _tpu_devices(name, generation, grid)
    budget, source = TPU_HBM_GIB[generation] * GIB, f"{generation}: {TPU_HBM_GIB[generation]} GiB HBM per chip"
  if memory_gib is not None:
    budget, source = int(memory_gib * GIB), f"--memory_gib {memory_gib:g}"
  return Topology(name, devices, budget, source)


# --------------------------------------------------------------------------- gin


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str]) -> None:
  """gin_config.parse, but the macros only a real run needs (MODEL_DIR, ...) may stay unset."""
  from xlt import gin_config
  try:
    gin_config.parse(gin_files, bindings)
    return
  except gin_config.GinConfigError:
    missing = gin_config.required_macros_unset()
    fill = [m for m in missing if m in _NOT_NEEDED_MACROS]
    if not fill:
      raise
  # Only unset (REQUIRED) macros get a placeholder, so no real value is replaced; any
  # other error, or a REQUIRED macro the step does need, is raised again here.
  gin_config.parse(gin_files, list(bindings) + [f"{m} = {_NOT_NEEDED_MACROS[m]}" for m in fill])


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """What the compiled train step depends on: the `train` arguments that shape it."""

  model: ModelConfig
  task_feature_lengths: dict[str, int]
  batch_size: int
  pack: bool = True
  optimizer: OptimizerConfig = OptimizerConfig()
  loss: losses.LossConfig = losses.LossConfig()
  mesh: partitioning.MeshConfig = partitioning.MeshConfig()
  num_microbatches: int = 1
  seed: int = 0
  trainable_params: str | None = None


def step_config_from_gin() -> StepConfig:
  """The arguments gin would give `train`, read from its bindings without calling it.

  Deep-copying a bound value is how gin itself evaluates `@Configurable()` and `%MACRO`
  references (in their scopes) when it calls a configurable.
  """
  import gin

  from xlt import trainer
  signature = inspect.signature(trainer.train).parameters

  def arg(name: str) -> Any:
    try:
      return copy.deepcopy(gin.query_parameter(f"train.{name}"))
    except ValueError:  # not bound: train's own default
      default = signature[name].default
      if default is inspect.Parameter.empty:
        raise ValueError(f"train.{name} is not bound; the gin files must configure `train` "
                         "as gin/runs/train.gin does") from None
      return default

  data = arg("data")
  if data.task_feature_lengths is None:
    raise ValueError("TASK_FEATURE_LENGTHS must be set, e.g. "
                     "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 512, 'targets': 128}\"")
  return StepConfig(model=arg("model"), task_feature_lengths=dict(data.task_feature_lengths),
                    batch_size=data.batch_size, pack=data.pack, optimizer=arg("optimizer"),
                    loss=arg("loss"), mesh=arg("mesh"), num_microbatches=arg("num_microbatches"),
                    seed=arg("seed"), trainable_params=arg("trainable_params"))


# --------------------------------------------------------------------------- sizes


def shard_bytes(shape: Sequence[int], dtype: Any, sharding: NamedSharding) -> int:
  """Bytes of the largest shard one device holds (uneven splits round up, as XLA pads)."""
  spec = tuple(sharding.spec) + (None,) * (len(shape) - len(sharding.spec))
  mesh_shape = sharding.mesh.shape
  elements = 1
  for dim, entry in zip(shape, spec):
    axes = () if entry is None else (entry if isinstance(entry, tuple) else (entry,))
    elements *= -(-dim // math.prod(mesh_shape[a] for a in axes))
  return elements * jnp.dtype(dtype).itemsize


def tree_bytes(tree: Any) -> tuple[int, int]:
  """(bytes on one device, bytes of the whole arrays) of a tree of sharded ShapeDtypeStructs."""
  per_device = total = 0
  for leaf in jax.tree.leaves(tree):
    per_device += shard_bytes(leaf.shape, leaf.dtype, leaf.sharding)
    total += math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize
  return per_device, total


def abstract_batch(config: StepConfig, sharding: NamedSharding) -> dict[str, jax.ShapeDtypeStruct]:
  """The feature converter's features ([batch, length] int32) as ShapeDtypeStructs:
  EncDecFeatureConverter's, or for a decoder-only model DecoderFeatureConverter's (one
  sequence of inputs + targets)."""
  b = config.batch_size
  lengths = {"encoder": config.task_feature_lengths["inputs"],
             "decoder": config.task_feature_lengths["targets"]}
  if models.is_decoder_only(config.model):
    lengths = {"decoder": lengths["encoder"] + lengths["decoder"]}

  def spec(stack):
    return jax.ShapeDtypeStruct((b, lengths[stack]), jnp.int32, sharding=sharding)

  batch = {"decoder_input_tokens": spec("decoder"), "decoder_target_tokens": spec("decoder"),
           "decoder_loss_weights": spec("decoder")}
  if "encoder" in lengths:
    batch["encoder_input_tokens"] = spec("encoder")
  if config.pack:
    for stack in lengths:
      batch[f"{stack}_segment_ids"] = spec(stack)
      batch[f"{stack}_positions"] = spec(stack)
  return batch


# --------------------------------------------------------------------------- report


_BACKEND_FIELDS = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
                   "temp_size_in_bytes", "generated_code_size_in_bytes", "peak_memory_in_bytes",
                   "host_argument_size_in_bytes", "host_output_size_in_bytes",
                   "host_temp_size_in_bytes")


def _backend_stats(compiled) -> dict[str, int] | None:
  """memory_analysis() as a dict of the fields this jax has; None if the backend has none."""
  try:
    stats = compiled.memory_analysis()
  except Exception:  # noqa: BLE001 - unimplemented on some backends
    return None
  if stats is None:
    return None
  out = {}
  for field in _BACKEND_FIELDS:
    value = getattr(stats, field, None)
    if isinstance(value, int):
      out[field] = value
  return out or None


def human(n: int | float | None) -> str:
  if n is None:
    return "?"
  for unit, size in (("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
    if abs(n) >= size:
      return f"{n / size:.2f} {unit}"
  return f"{int(n)} B"


@dataclasses.dataclass
class MemoryReport:
  """Per-device bytes of one compiled train step, and what it is compared against."""

  topology: Topology
  config: StepConfig
  mesh_shape: dict[str, int]
  num_params: int
  params_bytes: int  # one device's shards
  params_total_bytes: int  # the whole model
  opt_state_bytes: int  # optimizer state + step counter, one device
  opt_state_total_bytes: int
  batch_bytes: int
  backend: dict[str, int] | None  # memory_analysis(); None: the backend reports nothing
  lower_seconds: float = 0.0
  compile_seconds: float = 0.0
  compile_error: str | None = None  # the compiler refused (e.g. out of HBM)

  @property
  def temp_bytes(self) -> int | None:
    if self.compile_error is not None:
      return oom_temp_bytes(self.compile_error)
    return None if self.backend is None else self.backend.get("temp_size_in_bytes")

  @property
  def unaliased_output_bytes(self) -> int | None:
    """New state the step could not write over its donated input (0 when donation works)."""
    if self.backend is None or "output_size_in_bytes" not in self.backend:
      return None
    return max(self.backend["output_size_in_bytes"] - self.backend.get("alias_size_in_bytes", 0), 0)

  @property
  def padding_bytes(self) -> int | None:
    """What the backend's argument layouts add over the plain shard sizes (TPU tiling)."""
    if self.backend is None or "argument_size_in_bytes" not in self.backend:
      return None
    plain = self.params_bytes + self.opt_state_bytes + self.batch_bytes
    return max(self.backend["argument_size_in_bytes"] - plain, 0)

  @property
  def code_bytes(self) -> int | None:
    return None if self.backend is None else self.backend.get("generated_code_size_in_bytes")

  @property
  def total_bytes(self) -> int:
    """State + batch + what the compiler adds (temporaries, undonated outputs, code)."""
    parts = (self.params_bytes, self.opt_state_bytes, self.batch_bytes, self.padding_bytes,
             self.temp_bytes, self.unaliased_output_bytes, self.code_bytes)
    return sum(p for p in parts if p)

  @property
  def fits(self) -> bool:
    if self.compile_error is not None:
      return False
    return self.topology.budget_bytes is None or self.total_bytes <= self.topology.budget_bytes

  @property
  def batch_shards(self) -> int:
    return self.mesh_shape["data"] * self.mesh_shape["fsdp"]

  def table(self) -> str:
    cfg, topo = self.config, self.topology
    model = cfg.model
    rows_per_device = cfg.batch_size / self.batch_shards
    micro = cfg.num_microbatches
    lines = [
        f"xlt compile: {self.num_params / 1e6:.2f}M parameters (d_model={model.d_model}, "
        f"layers={models.layers_text(model)}, vocab={model.vocab_size}, "
        f"{model.param_dtype} params, {model.dtype} compute"
        f", remat={model.remat_policy}{', scanned layers' if model.scan_layers else ''})",
        f"topology: {topo.name}: {len(topo.devices)} x {topo.device_kind} ({topo.platform})",
        "mesh: " + " x ".join(f"{k}={v}" for k, v in self.mesh_shape.items()),
        f"batch: global {cfg.batch_size} x (inputs {cfg.task_feature_lengths['inputs']}, "
        f"targets {cfg.task_feature_lengths['targets']}){', packed' if cfg.pack else ''}; "
        f"per device {rows_per_device:g} rows (split over data x fsdp = {self.batch_shards})"
        + (f", {micro} microbatches of {rows_per_device / micro:g}" if micro > 1 else ""),
        f"optimizer: {cfg.optimizer.name}; lowered in {self.lower_seconds:.1f} s, "
        f"compiled in {self.compile_seconds:.1f} s",
        "",
        f"{'per-device memory':<30}{'':>12}{'bytes':>18}",
    ]

    def row(label: str, value: int | None, note: str = "") -> None:
      shown = "n/a" if value is None else human(value)
      exact = "" if value is None else f"{value:,}"
      lines.append(f"  {label:<28}{shown:>12}{exact:>18}  {note}".rstrip())

    row("parameters", self.params_bytes, f"(whole model {human(self.params_total_bytes)})")
    row("optimizer state", self.opt_state_bytes,
        f"(whole {human(self.opt_state_total_bytes)}; with the step counter)")
    row("batch", self.batch_bytes)
    if self.compile_error is not None:
      row("activations / temporaries", self.temp_bytes, "(from the compiler's out-of-memory "
          "error" + ("; it reports no more" if self.temp_bytes else ", which gives no size") + ")")
    elif self.backend is None:
      row("activations / temporaries", None,
          f"(the {topo.platform} backend reports no memory analysis)")
    else:
      row("layout padding", self.padding_bytes, "(backend argument size - the rows above)")
      row("activations / temporaries", self.temp_bytes, "(compiler: temp_size_in_bytes)")
      row("outputs not donated", self.unaliased_output_bytes, "(output - alias)")
      row("generated code", self.code_bytes)
    row("total", self.total_bytes)
    budget = topo.budget_bytes
    if budget is None:
      lines.append(f"  {'budget':<28}{'unlimited':>12}{'':>18}  ({topo.budget_source})")
    else:
      row("budget", budget, f"({topo.budget_source})")
    if self.backend is not None:
      reported = ", ".join(f"{k.replace('_size_in_bytes', '').replace('_in_bytes', '')} "
                           f"{human(v)}" for k, v in self.backend.items() if v)
      lines.append(f"backend memory_analysis: {reported or 'all zero'}")
    if self.compile_error is None and budget is not None:
      lines.append(f"{'fits' if self.fits else 'DOES NOT FIT'}: "
                   f"{100 * self.total_bytes / budget:.1f}% of the budget")
    return "\n".join(lines)

  def explain(self) -> str:
    """Why it does not fit, and what to change."""
    topo, cfg = self.topology, self.config
    budget = topo.budget_bytes
    state = self.params_bytes + self.opt_state_bytes
    if self.compile_error is not None:
      what = (f"the compiler ran out of memory for {topo.name}: "
              f"{self.compile_error.rstrip('.')}")
    else:
      what = (f"the train step needs {human(self.total_bytes)} per device, over the budget of "
              f"{human(budget)} ({topo.budget_source})")
    if budget is not None and state > budget:
      what += f"; parameters + optimizer state alone take {human(state)} per device"
    elif self.temp_bytes and budget is not None and self.compile_error is None:
      what += f"; activations / temporaries take {human(self.temp_bytes)}"
    mesh = self.mesh_shape
    shard_tips = []
    if mesh["data"] > 1:
      shard_tips.append(f"shard the state over more devices: --gin.MeshConfig.data=1 "
                        f"--gin.MeshConfig.fsdp={mesh['data'] * mesh['fsdp']}")
    shard_tips.append("a bigger slice, or more model parallelism (--gin.MeshConfig.model=N "
                      "with --gin.MeshConfig.fsdp=-1)")
    if cfg.optimizer.name == "adamw":
      shard_tips.append("Adafactor's factored statistics instead of AdamW's two full moments "
                        "(--gin.OptimizerConfig.name=\"'adafactor'\")")
    activation_tips = []
    per_device_rows = cfg.batch_size // self.batch_shards
    if per_device_rows // cfg.num_microbatches > 1:
      activation_tips.append(f"gradient accumulation (--gin.train.num_microbatches="
                             f"{cfg.num_microbatches * 2}; the global batch stays "
                             f"{cfg.batch_size})")
    if cfg.model.remat_policy == "none":
      activation_tips.append("rematerialisation (--gin.T5Config.remat_policy=\"'full'\" or "
                             "\"'dots_saveable'\")")
    if per_device_rows > 1:
      activation_tips.append(f"a smaller batch (--gin.BATCH_SIZE={cfg.batch_size // 2})")
    state_dominates = budget is not None and state > budget
    tips = shard_tips + activation_tips if state_dominates else activation_tips + shard_tips
    return what + ". Try: " + "; ".join(tips) + "."


def oom_temp_bytes(message: str) -> int | None:
  """The temporaries size in an XLA:TPU out-of-memory error ("... HLO temporaries (65.17G) ...")."""
  m = re.search(r"HLO temporaries \(([\d.]+)([KMGT]?)\)", message)
  if not m:
    return None
  return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2) or " "))


def _is_out_of_memory(error: Exception) -> bool:
  text = str(error)
  return "RESOURCE_EXHAUSTED" in text or "Ran out of memory" in text or "out of memory" in text


def compile_train_step(config: StepConfig, topology: Topology) -> MemoryReport:
  """Lowers and compiles the jitted, donated train step for `topology`; no parameters exist."""
  if config.num_microbatches < 1 or config.batch_size % config.num_microbatches:
    raise ValueError(f"BATCH_SIZE={config.batch_size} is not divisible by "
                     f"train.num_microbatches={config.num_microbatches}")
  mesh: Mesh = partitioning.make_mesh(config.mesh, list(topology.devices))
  mesh_shape = {a: int(mesh.shape[a]) for a in partitioning.MESH_AXES}
  shards = mesh_shape["data"] * mesh_shape["fsdp"]
  if config.batch_size % shards:
    raise ValueError(f"BATCH_SIZE={config.batch_size} does not split over data x fsdp = "
                     f"{shards} devices (mesh {mesh_shape}); pick a multiple of {shards}")
  rules = config.mesh.rules
  tx, schedule = config.optimizer.build()
  abstract, shardings, _ = train_state.state_shardings(config.model, tx, mesh, rules,
                                                       config.trainable_params)
  # [shape, dtype, sharding] per leaf: what jit sees for the real state, with no buffers.
  state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                       abstract, shardings)
  batch_sharding = partitioning.batch_sharding(mesh)
  batch = abstract_batch(config, batch_sharding)
  params_bytes, params_total = tree_bytes(state.params)
  opt_bytes, opt_total = tree_bytes((state.step, state.opt_state))
  batch_bytes, _ = tree_bytes(batch)

  step_fn = make_train_step(models.build(config.model), tx, schedule, config.loss,
                            config.num_microbatches, config.seed, config.trainable_params)
  compile_error = backend = None
  t0 = time.perf_counter()
  with partitioning.activation_rules(mesh, rules):
    lowered = jit_train_step(step_fn, shardings, mesh).lower(state, batch)
    t1 = time.perf_counter()
    try:
      compiled = lowered.compile()
      backend = _backend_stats(compiled)
    except Exception as e:  # noqa: BLE001 - XLA reports HBM exhaustion as a runtime error
      if not _is_out_of_memory(e):
        raise
      compile_error = str(e).strip().splitlines()[0][:600]
  t2 = time.perf_counter()
  return MemoryReport(
      topology=topology, config=config, mesh_shape=mesh_shape,
      num_params=sum(math.prod(x.shape) for x in jax.tree.leaves(abstract.params)),
      params_bytes=params_bytes, params_total_bytes=params_total, opt_state_bytes=opt_bytes,
      opt_state_total_bytes=opt_total, batch_bytes=batch_bytes, backend=backend,
      lower_seconds=t1 - t0, compile_seconds=t2 - t1, compile_error=compile_error)
