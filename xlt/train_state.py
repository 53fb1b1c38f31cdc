"""Train state and its layout on the mesh."""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xlt import models, partitioning, trainable
from xlt.models import ModelConfig


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # number of optimizer updates applied
  params: Any
  opt_state: Any


def boxed_params(config: ModelConfig, rng: jax.Array) -> Any:
  """Parameters with their logical axis names (nn.LogicallyPartitioned leaves)."""
  model = models.build(config)
  tokens = jnp.ones((1, 4), jnp.int32)
  inputs = (tokens,) if models.is_decoder_only(config) else (tokens, tokens)
  return model.init({"params": rng}, *inputs)["params"]


def init_state(config: ModelConfig, optimizer: optax.GradientTransformation,
               rng: jax.Array, trainable_params: str | None = None) -> TrainState:
  """The optimizer's state covers only the trained parameters (xlt.trainable)."""
  params = nn.meta.unbox(boxed_params(config, rng))
  trained, _ = trainable.split(params, trainable_params)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(trained))


def opt_state_shardings(abstract_opt_state: Any, abstract_params: Any, param_shardings: Any,
                        mesh: Mesh) -> Any:
  """An optimizer leaf whose path ends with a parameter's path and that has its shape
  (moments, Adafactor's unfactored second moment; also under multi_transform or a vmap
  over stacked layers) shares that parameter's sharding. The rest (factored row/column
  statistics, counters) is small and replicated."""
  replicated = NamedSharding(mesh, P())
  by_path = {tuple(path): (leaf.shape, sharding) for (path, leaf), sharding in zip(
      jax.tree_util.tree_leaves_with_path(abstract_params), jax.tree.leaves(param_shardings))}
  depth = max((len(p) for p in by_path), default=0)

  def choose(path, leaf):
    path = tuple(path)
    for n in range(min(depth, len(path)), 0, -1):
      match = by_path.get(path[-n:])
      if match is not None and tuple(match[0]) == tuple(getattr(leaf, "shape", ())):
        return match[1]
    return replicated

  return jax.tree_util.tree_map_with_path(choose, abstract_opt_state)


def state_shardings(config: ModelConfig, optimizer: optax.GradientTransformation, mesh: Mesh,
                    rules, trainable_params: str | None = None
                    ) -> tuple[TrainState, TrainState, Any]:
  """(abstract state, NamedShardings of the state, abstract boxed params), no memory used."""
  rng = jax.random.key(0)
  boxed = jax.eval_shape(lambda r: boxed_params(config, r), rng)
  abstract = jax.eval_shape(lambda r: init_state(config, optimizer, r, trainable_params), rng)
  params_sh = partitioning.shardings_from_logical(boxed, mesh, rules)
  opt_sh = opt_state_shardings(abstract.opt_state, abstract.params, params_sh, mesh)
  shardings = TrainState(step=NamedSharding(mesh, P()), params=params_sh, opt_state=opt_sh)
  return abstract, shardings, boxed


def create_sharded_state(config: ModelConfig, optimizer: optax.GradientTransformation, mesh: Mesh,
                         rules, seed: int, trainable_params: str | None = None
                         ) -> tuple[TrainState, TrainState, Any]:
  """Initialises the state directly into its shards (never whole on one device)."""
  abstract, shardings, boxed = state_shardings(config, optimizer, mesh, rules, trainable_params)
  init: Callable = jax.jit(lambda r: init_state(config, optimizer, r, trainable_params),
                           out_shardings=shardings)
  state = init(jax.random.key(seed))
  return state, shardings, boxed
