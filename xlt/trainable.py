"""Which parameters a run trains: the rest is frozen, never differentiated or updated.

A regex (`train.trainable_params`, fullmatch) over '/'-joined parameter paths such as
'encoder/layers_0/mlp/wi_0/kernel/scales' picks the trained leaves; None trains every
floating-point leaf. Integer leaves (quantized codes and zero-points) are always frozen.
The step differentiates only the trained subtree and the optimizer holds state only for
it, so a PEQA run (train only `.*/scales`) keeps no moments for the frozen weights.
"""
from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
from flax import traverse_util


def _path(keys: tuple) -> str:
  return "/".join(str(k) for k in keys)


def _is_trained(keys: tuple, leaf: Any, pattern: str | None) -> bool:
  if not jnp.issubdtype(leaf.dtype, jnp.inexact):
    return False
  return pattern is None or re.fullmatch(pattern, _path(keys)) is not None


def split(params: Any, pattern: str | None) -> tuple[dict, dict]:
  """(trained, frozen): two nested dicts that together hold every leaf of `params`."""
  flat = traverse_util.flatten_dict(params)
  trained = {k: v for k, v in flat.items() if _is_trained(k, v, pattern)}
  frozen = {k: v for k, v in flat.items() if k not in trained}
  return traverse_util.unflatten_dict(trained), traverse_util.unflatten_dict(frozen)


def merge(trained: dict, frozen: dict) -> dict:
  return traverse_util.unflatten_dict({**traverse_util.flatten_dict(frozen),
                                       **traverse_util.flatten_dict(trained)})


def check(params: Any, pattern: str | None, binding: str = "train.trainable_params") -> None:
  """A pattern that is not a regex or selects nothing is a config error, named."""
  if pattern is None:
    return
  try:
    re.compile(pattern)
  except re.error as e:
    raise ValueError(f"{binding}={pattern!r} is not a regex: {e}") from None
  trained, _ = split(params, pattern)
  if not jax.tree.leaves(trained):
    examples = [_path(k) for k in list(traverse_util.flatten_dict(params))[:3]]
    raise ValueError(f"{binding}={pattern!r} selects no floating-point parameter; paths look "
                     f"like {', '.join(examples)}")


def count(params: Any, pattern: str | None) -> tuple[int, int]:
  """(trained, total) numbers of parameter entries."""
  trained, _ = split(params, pattern)
  size = lambda t: sum(x.size for x in jax.tree.leaves(t))  # noqa: E731
  return size(trained), size(params)
