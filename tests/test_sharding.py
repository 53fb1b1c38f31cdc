"""Parameter layout on a data=1 x fsdp=4 x model=2 mesh of 8 fake CPU devices.

Expected layouts are worked out by hand from the logical-axis table below (a copy of
what DEFAULT_RULES is meant to say), not by calling the library's own helpers.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from conftest import synthetic_batch
from xlt import losses, partitioning, train_state
from xlt.models import TINY, Transformer
from xlt.optimizers import OptimizerConfig, Schedule
from xlt.train_step import make_train_step

CONFIG = TINY.replace(vocab_size=256, d_model=64, d_kv=16, d_ff=128, num_heads=4,
                      dropout_rate=0.0, dtype="float32", param_dtype="float32")
RULES = partitioning.DEFAULT_RULES
FSDP, MODEL = 4, 2
# Logical axis -> mesh axis for parameters, written out by hand.
HAND_RULES = {"vocab": "model", "embed": "fsdp", "mlp": "model", "heads": "model", "kv": None,
              "relpos_buckets": None}
ADAMW = OptimizerConfig(name="adamw", schedule=Schedule(kind="constant", base=1e-3,
                                                        warmup_steps=0))
ADAFACTOR = OptimizerConfig()
# For comparing updated params: AdamW with eps=1e-4. With the default eps=1e-8 the first
# Adam update is lr * g / (|g| + eps), about lr * sign(g), whose slope at |g| ~ eps is
# lr / (4 eps) = 2.5e4; float32 reduction-order noise of ~1e-8 in a ~1e-7 gradient then
# moves a parameter by > 1e-5 (seen: 1.2e-5 on a cross-attention out kernel)
# although the gradients agree to ~1e-7. eps=1e-4 bounds that slope by lr / eps = 10.
ADAMW_STEP = OptimizerConfig(name="adamw", eps=1e-4,
                             schedule=Schedule(kind="constant", base=1e-3, warmup_steps=0))

V, D, H, E, F, B = (CONFIG.vocab_size, CONFIG.d_model, CONFIG.num_heads, CONFIG.d_kv,
                    CONFIG.d_ff, CONFIG.relative_attention_num_buckets)
# path -> (logical axes, global shape)
PARAMS = {
    ("shared", "embedding"): (("vocab", "embed"), (V, D)),
    ("encoder", "layers_0", "mlp", "wi_0", "kernel"): (("embed", "mlp"), (D, F)),
    ("decoder", "layers_1", "mlp", "wo", "kernel"): (("mlp", "embed"), (F, D)),
    ("encoder", "layers_0", "attention", "query", "kernel"): (("embed", "heads", "kv"), (D, H, E)),
    ("decoder", "layers_0", "cross_attention", "out", "kernel"):
        (("heads", "kv", "embed"), (H, E, D)),
    ("decoder", "lm_head", "kernel"): (("embed", "vocab"), (D, V)),
    ("encoder", "layers_1", "pre_mlp_norm", "scale"): (("embed",), (D,)),
    ("decoder", "final_norm", "scale"): (("embed",), (D,)),
    ("encoder", "relpos_bias", "rel_embedding"): (("relpos_buckets", "heads"), (B, H)),
}
# The same, fully by hand, as a cross-check of HAND_RULES.
SPOT_SPECS = {
    ("shared", "embedding"): P("model", "fsdp"),
    ("encoder", "layers_0", "mlp", "wi_0", "kernel"): P("fsdp", "model"),
    ("encoder", "layers_0", "attention", "query", "kernel"): P("fsdp", "model", None),
    ("decoder", "lm_head", "kernel"): P("fsdp", "model"),
    ("decoder", "final_norm", "scale"): P("fsdp"),
    ("encoder", "relpos_bias", "rel_embedding"): P(None, "model"),
}
MESH_SIZE = {"model": MODEL, "fsdp": FSDP, None: 1}


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _strip(spec):
  """PartitionSpec entries without trailing Nones (P('a', None) and P('a') lay out alike)."""
  entries = list(spec)
  while entries and entries[-1] is None:
    entries.pop()
  return tuple(entries)


@pytest.fixture(scope="module")
def mesh():
  return partitioning.make_mesh(partitioning.MeshConfig(data=1, fsdp=FSDP, model=MODEL))


@pytest.fixture(scope="module")
def mesh1():
  return partitioning.make_mesh(partitioning.MeshConfig(data=1, fsdp=1, model=1),
                                devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def adamw_state(mesh):
  tx, _ = ADAMW.build()
  return train_state.create_sharded_state(CONFIG, tx, mesh, RULES, seed=0)


def test_mesh_shape(mesh):
  assert dict(mesh.shape) == {"data": 1, "fsdp": FSDP, "model": MODEL}
  assert mesh.devices.size == 8


@pytest.mark.parametrize("path", list(PARAMS), ids=lambda p: "/".join(p))
def test_param_spec_follows_rules(adamw_state, path):
  """Each weight is split on the mesh axes its logical names map to."""
  state, _, _ = adamw_state
  axes, shape = PARAMS[path]
  value = _get(state.params, path)
  assert value.shape == shape
  expected = P(*(HAND_RULES[a] for a in axes))
  if path in SPOT_SPECS:
    assert _strip(SPOT_SPECS[path]) == _strip(expected)
  assert isinstance(value.sharding, NamedSharding)
  assert _strip(value.sharding.spec) == _strip(expected)


@pytest.mark.parametrize("path", list(PARAMS), ids=lambda p: "/".join(p))
def test_param_really_split_into_8_shards(adamw_state, path):
  """The data is physically split: 8 addressable shards of the per-device shape."""
  state, _, _ = adamw_state
  axes, shape = PARAMS[path]
  value = _get(state.params, path)
  per_device = tuple(n // MESH_SIZE[HAND_RULES[a]] for a, n in zip(axes, shape))
  shards = value.addressable_shards
  assert len(shards) == 8
  assert len({s.device for s in shards}) == 8
  for s in shards:
    assert s.data.shape == per_device
  # Reassembling the shards gives back the whole array.
  whole = np.asarray(value)
  for s in shards:
    np.testing.assert_array_equal(np.asarray(s.data), whole[s.index])


def test_embedding_shard_shape(adamw_state):
  state, _, _ = adamw_state
  shard = state.params["shared"]["embedding"].addressable_shards[0]
  assert shard.data.shape == (V // 2, D // 4)


def test_assert_params_sharded_passes_on_real_state(adamw_state, mesh):
  state, _, boxed = adamw_state
  partitioning.assert_params_sharded(state.params, boxed, mesh, RULES, min_size=256)


@pytest.mark.parametrize("path", [("shared", "embedding"),
                                  ("encoder", "layers_0", "mlp", "wi_0", "kernel")])
def test_assert_params_sharded_catches_replicated_param(adamw_state, mesh, path):
  """A big weight replicated on every device must be reported."""
  state, _, boxed = adamw_state
  params = jax.tree.map(lambda x: x, state.params)  # new containers, same arrays
  parent = _get(params, path[:-1])
  parent[path[-1]] = jax.device_put(parent[path[-1]], NamedSharding(mesh, P()))
  assert parent[path[-1]].is_fully_replicated
  with pytest.raises(AssertionError, match=path[-1]):
    partitioning.assert_params_sharded(params, boxed, mesh, RULES, min_size=1024)
  # The original state is untouched and still passes.
  partitioning.assert_params_sharded(state.params, boxed, mesh, RULES, min_size=1024)


def test_assert_params_sharded_min_size_skips_small_params(adamw_state, mesh):
  """Params below min_size are not checked (the embedding has V*D elements)."""
  state, _, boxed = adamw_state
  params = jax.tree.map(lambda x: x, state.params)
  params["shared"]["embedding"] = jax.device_put(params["shared"]["embedding"],
                                                 NamedSharding(mesh, P()))
  partitioning.assert_params_sharded(params, boxed, mesh, RULES, min_size=V * D + 1)


def test_adamw_moments_share_param_sharding(adamw_state):
  """Adam's mu/nu are as big as the params, so they must be split the same way."""
  state, shardings, _ = adamw_state
  adam_state = state.opt_state[0]
  path = ("encoder", "layers_0", "mlp", "wi_0", "kernel")
  param = _get(state.params, path)
  for moments in (adam_state.mu, adam_state.nu):
    leaf = _get(moments, path)
    assert leaf.shape == param.shape
    assert _strip(leaf.sharding.spec) == ("fsdp", "model")
    assert leaf.sharding.is_equivalent_to(param.sharding, leaf.ndim)
    assert len(leaf.addressable_shards) == 8
    assert leaf.addressable_shards[0].data.shape == (D // 4, F // 2)
  emb_mu = adam_state.mu["shared"]["embedding"]
  assert _strip(emb_mu.sharding.spec) == ("model", "fsdp")
  assert state.opt_state[0].count.sharding.is_fully_replicated


def test_adafactor_state_shardings(mesh):
  """Adafactor leaves of a param's shape share its sharding; placeholders are replicated."""
  tx, _ = ADAFACTOR.build()
  abstract, shardings, _ = train_state.state_shardings(CONFIG, tx, mesh, RULES)
  factored = shardings.opt_state[0]
  abs_factored = abstract.opt_state[0]
  path = ("encoder", "layers_0", "mlp", "wi_0", "kernel")
  # d_model=64 < min_dim_size_to_factor=128, so `v` holds the full second moment.
  assert _get(abs_factored.v, path).shape == (D, F)
  assert _strip(_get(factored.v, path).spec) == ("fsdp", "model")
  assert _get(abs_factored.v_row, path).shape != (D, F)
  assert _strip(_get(factored.v_row, path).spec) == ()
  emb = _get(factored.v, ("shared", "embedding"))
  assert _strip(emb.spec) == ("model", "fsdp")


# --- one train step: 8-device mesh == 1-device mesh -------------------------------

def _batch(seed=0, batch=8, in_len=16, tgt_len=8):
  """EncDecFeatureConverter-style batch with ragged lengths (0 = padding)."""
  return synthetic_batch([16, 10, 5, 16, 12, 3, 8, 14][:batch], [8, 3, 6, 1, 8, 5, 2, 7][:batch],
                         V, in_len, tgt_len, seed)


# One layer per stack keeps compilation of the step on 8 devices (2 CPU cores) short.
STEP_CONFIG = CONFIG.replace(num_encoder_layers=1, num_decoder_layers=1)


def _one_step(opt_config, mesh):
  """Initial params and (params, metrics) after one step, as host numpy, on `mesh`."""
  tx, schedule = opt_config.build()
  state, shardings, _ = train_state.create_sharded_state(STEP_CONFIG, tx, mesh, RULES, seed=0)
  initial = jax.device_get(state.params)
  step_fn = make_train_step(Transformer(STEP_CONFIG), tx, schedule, losses.LossConfig())
  batch_sh = partitioning.batch_sharding(mesh)
  batch = {k: jax.device_put(v, batch_sh) for k, v in _batch().items()}
  with partitioning.activation_rules(mesh, RULES):
    jit_step = jax.jit(step_fn, in_shardings=(shardings, batch_sh),
                       out_shardings=(shardings, partitioning.replicated(mesh)),
                       donate_argnums=(0,))
    new_state, metrics = jit_step(state, batch)
  # The output keeps the layout it was given.
  emb = new_state.params["shared"]["embedding"]
  assert emb.sharding.is_equivalent_to(shardings.params["shared"]["embedding"], 2)
  return (initial, jax.device_get(new_state.params), jax.device_get(metrics),
          int(new_state.step), jax.device_get(new_state.opt_state))


@pytest.mark.parametrize("opt_config", [ADAMW_STEP, ADAFACTOR], ids=["adamw", "adafactor"])
def test_sharded_step_equals_single_device_step(opt_config, mesh, mesh1):
  """Sharding is a layout decision only: the numbers must not change."""
  init8, params8, metrics8, step8, opt8 = _one_step(opt_config, mesh)
  init1, params1, metrics1, step1, opt1 = _one_step(opt_config, mesh1)
  assert step8 == step1 == 1
  # Same seed, same initial values whatever the layout.
  for a, b in zip(jax.tree.leaves(init8), jax.tree.leaves(init1)):
    np.testing.assert_array_equal(a, b)
  assert np.isfinite(metrics8["loss"])
  np.testing.assert_allclose(metrics8["loss"], metrics1["loss"], rtol=0, atol=1e-5)
  np.testing.assert_allclose(metrics8["grad_norm"], metrics1["grad_norm"], rtol=1e-5, atol=0)
  assert metrics8["target_tokens"] == metrics1["target_tokens"] == 40
  flat8 = jax.tree_util.tree_leaves_with_path(params8)
  flat1 = jax.tree.leaves(params1)
  assert len(flat8) == len(flat1)
  moved = 0.0
  for (path, a), b, a0 in zip(flat8, flat1, jax.tree.leaves(init8)):
    diff = np.max(np.abs(a - b))
    assert diff <= 1e-5, f"{jax.tree_util.keystr(path)}: max abs diff {diff}"
    moved = max(moved, float(np.max(np.abs(a - a0))))
  assert moved > 1e-4  # the step really changed the params
  if opt_config.name == "adamw":
    # After one step Adam's first moment is (1 - b1) * grad: the gradients themselves agree.
    for a, b in zip(jax.tree.leaves(opt8[0].mu), jax.tree.leaves(opt1[0].mu)):
      np.testing.assert_allclose(a / (1 - opt_config.b1), b / (1 - opt_config.b1),
                                 rtol=0, atol=1e-5)


# --- make_mesh errors ------------------------------------------------------------

def test_make_mesh_indivisible_raises():
  with pytest.raises(ValueError, match=r"8.*3|3.*8"):
    partitioning.make_mesh(partitioning.MeshConfig(data=3, fsdp=-1))


def test_make_mesh_two_free_axes_raises():
  with pytest.raises(ValueError, match="-1"):
    partitioning.make_mesh(partitioning.MeshConfig(data=-1, fsdp=-1))


def test_make_mesh_wrong_product_raises():
  with pytest.raises(ValueError, match=r"4.*8"):
    partitioning.make_mesh(partitioning.MeshConfig(data=2, fsdp=2, model=1))


def test_make_mesh_fills_free_axis():
  mesh = partitioning.make_mesh(partitioning.MeshConfig(data=2, fsdp=-1, model=2))
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "model": 2}
