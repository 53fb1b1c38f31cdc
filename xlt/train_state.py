"""Train state and its layout on the mesh."""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xlt import partitioning
from xlt.models import T5Config, Transformer


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # number of optimizer updates applied
  params: Any
  opt_state: Any


def boxed_params(config: T5Config, rng: jax.Array) -> Any:
  """Parameters with their logical axis names (nn.LogicallyPartitioned leaves)."""
  model = Transformer(config)
  tokens = jnp.ones((1, 4), jnp.int32)
  return model.init({"params": rng}, tokens, tokens)["params"]


def init_state(config: T5Config, optimizer: optax.GradientTransformation,
               rng: jax.Array) -> TrainState:
  params = nn.meta.unbox(boxed_params(config, rng))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params))


def opt_state_shardings(optimizer: optax.GradientTransformation, abstract_opt_state: Any,
                        abstract_params: Any, param_shardings: Any, mesh: Mesh) -> Any:
  """Optimizer leaves shaped like their parameter share its sharding; the rest
  (Adafactor's factored row/column statistics, counters) are small and replicated."""
  replicated = NamedSharding(mesh, P())

  def per_param(leaf, param, sharding):
    return sharding if getattr(leaf, "shape", None) == param.shape else replicated

  def zipped(leaf_tree, *rest):
    return per_param(leaf_tree, *rest)

  return optax.tree_map_params(
      optimizer, zipped, abstract_opt_state, abstract_params, param_shardings,
      transform_non_params=lambda _: replicated)


def state_shardings(config: T5Config, optimizer: optax.GradientTransformation, mesh: Mesh,
                    rules) -> tuple[TrainState, TrainState, Any]:
  """(abstract state, NamedShardings of the state, abstract boxed params), no memory used."""
  rng = jax.random.key(0)
  boxed = jax.eval_shape(lambda r: boxed_params(config, r), rng)
  abstract = jax.eval_shape(lambda r: init_state(config, optimizer, r), rng)
  params_sh = partitioning.shardings_from_logical(boxed, mesh, rules)
  opt_sh = opt_state_shardings(optimizer, abstract.opt_state, abstract.params, params_sh, mesh)
  shardings = TrainState(step=NamedSharding(mesh, P()), params=params_sh, opt_state=opt_sh)
  return abstract, shardings, boxed


def create_sharded_state(config: T5Config, optimizer: optax.GradientTransformation, mesh: Mesh,
                         rules, seed: int) -> tuple[TrainState, TrainState, Any]:
  """Initialises the state directly into its shards (never whole on one device)."""
  abstract, shardings, boxed = state_shardings(config, optimizer, mesh, rules)
  init: Callable = jax.jit(lambda r: init_state(config, optimizer, r), out_shardings=shardings)
  state = init(jax.random.key(seed))
  return state, shardings, boxed
