"""The two parameter layouts of a layer stack, and moving a tree between them.

per-layer (T5Config.scan_layers=False, what `xlt convert hf` writes):
  encoder/layers_0/mlp/wo/kernel [mlp, embed], encoder/layers_1/..., ...
scanned (scan_layers=True, one nn.scan per stack):
  encoder/layers/mlp/wo/kernel   [layers, mlp, embed]

Both describe the same model, so checkpoints restore into either (xlt.checkpoints) and
the optimizer keeps per-layer statistics for stacked leaves (xlt.optimizers). The
functions work on any nested-dict tree whose leaves are arrays, or ShapeDtypeStructs
carrying a NamedSharding (for restoring without materialising the other layout).
"""
from __future__ import annotations

import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P

STACKED = "layers"  # the key of a scanned stack's subtree
STACKS = ("encoder", "decoder")
_PER_LAYER = re.compile(r"layers_(\d+)$")


def _layer_keys(stack: dict) -> list[str]:
  return sorted((k for k in stack if _PER_LAYER.match(k)), key=lambda k: int(k[7:]))


def is_scanned(tree: Any) -> bool | None:
  """True / False for a scanned / per-layer params tree; None if it has no layer stack."""
  if not isinstance(tree, dict):
    return None
  for name in STACKS:
    stack = tree.get(name)
    if isinstance(stack, dict):
      if STACKED in stack:
        return True
      if _layer_keys(stack):
        return False
  return None


def stacked_stacks(tree: Any) -> list[str]:
  """Names of the stacks ("encoder", "decoder") that hold a scanned `layers` subtree."""
  if not isinstance(tree, dict):
    return []
  return [n for n in STACKS if isinstance(tree.get(n), dict) and STACKED in tree[n]]


def _convert(tree: dict, scanned: bool, combine: Callable[[list], Any],
             split: Callable[[Any], list]) -> dict:
  out = dict(tree)
  for name in STACKS:
    stack = tree.get(name)
    if not isinstance(stack, dict):
      continue
    rest = {k: v for k, v in stack.items() if k != STACKED and not _PER_LAYER.match(k)}
    if scanned and _layer_keys(stack):
      layers = [stack[k] for k in _layer_keys(stack)]
      out[name] = {**rest, STACKED: jax.tree.map(lambda *xs: combine(list(xs)), *layers)}
    elif not scanned and STACKED in stack:
      per_leaf = jax.tree.map(split, stack[STACKED])
      n = len(jax.tree.leaves(per_leaf, is_leaf=lambda x: isinstance(x, list))[0])
      layers = {f"layers_{i}": jax.tree.map(lambda parts, i=i: parts[i], per_leaf,
                                            is_leaf=lambda x: isinstance(x, list))
                for i in range(n)}
      out[name] = {**rest, **layers}
  return out


def to_layout(params: Any, scanned: bool) -> Any:
  """Arrays in the scanned (stacked on axis 0) or per-layer layout; a no-op if already so."""
  return _convert(params, scanned, combine=lambda xs: jnp.stack(xs),
                  split=lambda x: [x[i] for i in range(x.shape[0])])


def abstract_to_layout(abstract: Any, scanned: bool) -> Any:
  """ShapeDtypeStructs with NamedShardings, in the other layout: a stacked leaf is
  unsharded along its layers axis (the "layers" rule), its slices keep the rest."""

  def combine(parts: list) -> jax.ShapeDtypeStruct:
    first = parts[0]
    sharding = NamedSharding(first.sharding.mesh, P(None, *first.sharding.spec))
    return jax.ShapeDtypeStruct((len(parts),) + tuple(first.shape), first.dtype, sharding=sharding)

  def split(leaf: jax.ShapeDtypeStruct) -> list:
    sharding = NamedSharding(leaf.sharding.mesh, P(*tuple(leaf.sharding.spec)[1:]))
    part = jax.ShapeDtypeStruct(tuple(leaf.shape[1:]), leaf.dtype, sharding=sharding)
    return [part] * leaf.shape[0]

  return _convert(abstract, scanned, combine, split)


def describe(scanned: bool | None) -> str:
  return {True: "scanned layers (T5Config.scan_layers=True)",
          False: "per-layer parameters (T5Config.scan_layers=False)"}.get(scanned, "no layers")
