"""The one place that decides how arrays are laid out on the device mesh.

Flow (big_vision / MaxText style):
  abstract = jax.eval_shape(init)                 # logical axis names, no memory
  shardings = param_shardings(abstract, mesh, rules)
  state = jax.jit(init, out_shardings=shardings)()
  step = jax.jit(train_step, donate_argnums=0, ...)
  assert_params_sharded(state.params, ...)
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Iterator, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "model")

# Logical axis -> mesh axis. A logical name may be listed more than once: the first
# rule whose mesh axis is still free in that array wins (so activations whose batch
# already uses fsdp leave `embed` unsharded).
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("vocab", "model"),
    ("embed", "fsdp"),
    ("mlp", "model"),
    ("heads", "model"),
    ("kv_heads", "model"),  # LLaMA's key/value heads (grouped-query attention)
    ("kv", None),
    ("length", None),
    ("relpos_buckets", None),
    ("layers", None),  # the stacked axis of scanned layers (T5Config.scan_layers)
)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Mesh axis sizes; one of them may be -1 for "all remaining devices"."""

  data: int = 1
  fsdp: int = -1
  model: int = 1
  rules: tuple[tuple[str, Any], ...] = DEFAULT_RULES

  def axis_sizes(self, num_devices: int) -> tuple[int, int, int]:
    sizes = [self.data, self.fsdp, self.model]
    if sizes.count(-1) > 1:
      raise ValueError(f"MeshConfig: at most one axis may be -1, got {self}")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
      if num_devices % known:
        raise ValueError(f"MeshConfig {self}: {num_devices} devices are not divisible by {known}")
      sizes[sizes.index(-1)] = num_devices // known
    if math.prod(sizes) != num_devices:
      raise ValueError(
          f"MeshConfig data={sizes[0]} x fsdp={sizes[1]} x model={sizes[2]} = {math.prod(sizes)} "
          f"devices, but {num_devices} are available; use -1 for one axis to take the rest")
    return tuple(sizes)


def make_mesh(config: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
  devices = list(jax.devices() if devices is None else devices)
  shape = config.axis_sizes(len(devices))
  try:
    from jax.experimental import mesh_utils
    grid = mesh_utils.create_device_mesh(shape, devices)
  except (ValueError, NotImplementedError, AssertionError):
    grid = np.asarray(devices).reshape(shape)
  return Mesh(grid, MESH_AXES)


def logical_specs(boxed_tree: Any) -> Any:
  """Tree of logical PartitionSpecs from nn.LogicallyPartitioned leaves (P() for plain leaves)."""
  return nn.get_partition_spec(boxed_tree)


def shardings_from_logical(boxed_tree: Any, mesh: Mesh, rules) -> Any:
  """NamedShardings for every leaf of a (possibly abstract) boxed tree."""
  return nn.logical_to_mesh_sharding(logical_specs(boxed_tree), mesh, rules)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batches are split on their leading dim over data x fsdp, replicated over model."""
  return NamedSharding(mesh, P(("data", "fsdp")))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


@contextlib.contextmanager
def activation_rules(mesh: Mesh, rules) -> Iterator[None]:
  """Makes `nn.with_logical_constraint` in the model bind to `mesh` while tracing."""
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    yield


def _mesh_axes_of(spec: P) -> set[str]:
  axes = set()
  for entry in spec:
    if entry is None:
      continue
    axes.update(entry if isinstance(entry, tuple) else (entry,))
  return axes


def assert_params_sharded(params: Any, boxed_abstract: Any, mesh: Mesh, rules,
                          min_size: int = 2**16) -> None:
  """Fails if a parameter of >= min_size elements is not laid out as the rules say.

  Catches the silent failure mode where a big weight ends up replicated on every
  device (e.g. a missing or misspelled logical axis name).
  """
  expected = shardings_from_logical(boxed_abstract, mesh, rules)
  if jax.tree.structure(params) != jax.tree.structure(expected):
    raise AssertionError("parameters and their logical annotations have different trees: "
                         f"{jax.tree.structure(params)} vs {jax.tree.structure(expected)}")
  flat_params = jax.tree_util.tree_leaves_with_path(params)
  flat_expected = jax.tree_util.tree_leaves(expected)
  problems = []
  for (path, value), want in zip(flat_params, flat_expected):
    if value.size < min_size:
      continue
    name = jax.tree_util.keystr(path)
    have = value.sharding
    if not isinstance(have, NamedSharding) or have.spec != want.spec:
      problems.append(f"{name}: expected {want.spec}, got {getattr(have, 'spec', have)}")
      continue
    used = [a for a in _mesh_axes_of(want.spec) if mesh.shape[a] > 1]
    if any(mesh.shape[a] > 1 for a in MESH_AXES) and used and have.is_fully_replicated:
      problems.append(f"{name}: rules shard it over {used} but it is fully replicated")
  if problems:
    raise AssertionError("parameters not sharded as the rules say:\n  " + "\n  ".join(problems))
