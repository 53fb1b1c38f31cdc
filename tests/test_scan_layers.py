"""Scan over layers (T5Config.scan_layers) changes the program, never the numbers.

float32, tiny model with unequal encoder / decoder depths (3 / 2) so the two stacks'
layer axes differ. The scanned parameters are the per-layer ones stacked by
scan_layout.to_layout, so both models compute with exactly the same weights.
"""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import synthetic_batch
from xlt import checkpoints, decoding, losses, partitioning
from xlt.models import TINY, Transformer, scan_layout
from xlt.models.t5 import init_params
from xlt.optimizers import OptimizerConfig, Schedule
from xlt.train_state import create_sharded_state, init_state, state_shardings
from xlt.train_step import make_train_step, model_logits

CONFIG = TINY.replace(dtype="float32", num_encoder_layers=3, num_decoder_layers=2)
SCANNED = CONFIG.replace(scan_layers=True)
BATCH = synthetic_batch([16, 9, 12, 5], [8, 3, 6, 8], CONFIG.vocab_size)
RULES = partitioning.DEFAULT_RULES
CONSTANT = Schedule(kind="constant", base=1e-2, warmup_steps=0)


@pytest.fixture(scope="module")
def params():
  return jax.tree.map(lambda x: x.value if hasattr(x, "value") else x,
                      init_params(CONFIG, jax.random.key(0)),
                      is_leaf=lambda x: hasattr(x, "value"))


def _assert_close_per_leaf(actual, expected, rtol=1e-5):
  """Summation order differs between the programs: bound each leaf relative to its scale."""
  for (path, a), e in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected)):
    scale = float(np.max(np.abs(e)))
    np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale, err_msg=jax.tree_util.keystr(path))


def test_layouts_round_trip_exactly(params):
  stacked = scan_layout.to_layout(params, True)
  assert scan_layout.is_scanned(params) is False and scan_layout.is_scanned(stacked) is True
  assert stacked["encoder"]["layers"]["mlp"]["wo"]["kernel"].shape == (3, 128, 64)
  assert stacked["decoder"]["layers"]["mlp"]["wo"]["kernel"].shape == (2, 128, 64)
  np.testing.assert_array_equal(stacked["encoder"]["layers"]["mlp"]["wo"]["kernel"][2],
                                params["encoder"]["layers_2"]["mlp"]["wo"]["kernel"])
  # The same tree structure as the scanned model's own init.
  own = jax.eval_shape(lambda: init_params(SCANNED, jax.random.key(0)))
  assert (jax.tree.structure(jax.tree.map(jnp.shape, stacked)) ==
          jax.tree.structure(jax.tree.map(lambda x: x.value.shape, own,
                                          is_leaf=lambda x: hasattr(x, "value"))))
  back = scan_layout.to_layout(stacked, False)
  assert jax.tree.structure(back) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("remat", ["none", "full"])
def test_same_loss_and_gradients(params, remat):
  def loss_and_grads(config, p):
    model = Transformer(config.replace(remat_policy=remat))

    def loss_fn(q):
      total, _ = losses.summed_loss(model_logits(model, q, BATCH), BATCH, losses.LossConfig())
      return total
    return jax.jit(jax.value_and_grad(loss_fn))(p)

  loss, grads = loss_and_grads(CONFIG, params)
  loss_s, grads_s = loss_and_grads(SCANNED, scan_layout.to_layout(params, True))
  np.testing.assert_allclose(loss_s, loss, rtol=1e-6)
  assert float(loss) > 1.0
  _assert_close_per_leaf(scan_layout.to_layout(grads_s, False), grads)


# AdamW with eps=1e-8 moves a weight whose gradient is ~0 by ~lr * sign(g): gradient
# round-off (1e-7) of the two programs would decide those signs, so the comparison uses
# eps=1e-4, where an update is a smooth function of the gradient (as test_sharding does).
@pytest.mark.parametrize("optimizer", [OptimizerConfig(name="adafactor"),
                                       OptimizerConfig(name="adamw", eps=1e-4)],
                         ids=["adafactor", "adamw"])
def test_same_training_steps_with_per_layer_optimizer_statistics(optimizer):
  tx, schedule = dataclasses.replace(optimizer, schedule=CONSTANT, max_grad_norm=1.0).build()
  plain = init_state(CONFIG, tx, jax.random.key(0))
  stacked = scan_layout.to_layout(plain.params, True)
  scanned = plain.replace(params=stacked, opt_state=tx.init(stacked))
  step = jax.jit(make_train_step(Transformer(CONFIG), tx, schedule, losses.LossConfig()))
  step_s = jax.jit(make_train_step(Transformer(SCANNED), tx, schedule, losses.LossConfig()))
  start = plain.params
  for _ in range(3):
    plain, metrics = step(plain, BATCH)
    scanned, metrics_s = step_s(scanned, BATCH)
    np.testing.assert_allclose(metrics_s["loss"], metrics["loss"], rtol=1e-5)
  moved = max(float(jnp.max(jnp.abs(a - b)))
              for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(start)))
  assert moved > 1e-3
  _assert_close_per_leaf(scan_layout.to_layout(scanned.params, False), plain.params)


def test_greedy_decoding_with_kv_cache_is_the_same(params):
  tokens = jnp.asarray(BATCH["encoder_input_tokens"])
  plain = decoding.greedy_decode(Transformer(CONFIG), params, tokens, 6)
  scanned = decoding.greedy_decode(Transformer(SCANNED), scan_layout.to_layout(params, True),
                                   tokens, 6)
  np.testing.assert_array_equal(np.asarray(scanned), np.asarray(plain))
  cache = decoding.init_cache(Transformer(SCANNED), 4, 16, 6)
  assert cache["decoder"]["layers"]["self_attention"]["cached_key"].shape == (2, 4, 6, 4, 16)


def test_one_layer_is_traced_whatever_the_depth():
  def matmuls(config):
    tokens = jnp.ones((2, 8), jnp.int32)
    model = Transformer(config)
    p = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, tokens))
    jaxpr = jax.make_jaxpr(lambda q: model.apply(q, tokens, tokens))(p)
    return str(jaxpr).count("dot_general")  # the printed jaxpr includes the scan body

  deep, deeper = CONFIG.replace(num_encoder_layers=4), CONFIG.replace(num_encoder_layers=8)
  assert matmuls(deeper) > matmuls(deep)  # a Python loop: one copy per layer
  assert matmuls(deeper.replace(scan_layers=True)) == matmuls(deep.replace(scan_layers=True))


def test_stacked_parameters_and_moments_are_sharded_by_the_rules():
  mesh = partitioning.make_mesh(partitioning.MeshConfig(data=1, fsdp=4, model=2))
  tx, _ = OptimizerConfig(name="adamw").build()
  state, shardings, boxed = create_sharded_state(SCANNED, tx, mesh, RULES, seed=0)
  partitioning.assert_params_sharded(state.params, boxed, mesh, RULES, min_size=1)
  wi = state.params["encoder"]["layers"]["mlp"]["wi_0"]["kernel"]  # [layers, embed, mlp]
  assert wi.sharding.spec == partitioning.P(None, "fsdp", "model")
  assert {s.data.shape for s in wi.addressable_shards} == {(3, 64 // 4, 128 // 2)}
  moments = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(state.opt_state)
             if jax.tree_util.keystr(path).endswith("['encoder']['layers']['mlp']['wi_0']['kernel']")]
  assert len(moments) == 2  # AdamW's mu and nu, under the encoder stack's vmapped transform
  assert all(m.shape == wi.shape and m.sharding == wi.sharding for m in moments)


@pytest.mark.parametrize("saved_scanned", [False, True])
def test_checkpoint_restores_into_the_other_layout(tmp_path, saved_scanned):
  """What INITIAL_CHECKPOINT_PATH, eval and infer do: e.g. an `xlt convert hf` output
  (per-layer) into a scanned run on an fsdp=4 x model=2 mesh, and back."""
  saved_config, target_config = (SCANNED, CONFIG) if saved_scanned else (CONFIG, SCANNED)
  tx, _ = OptimizerConfig(name="adamw").build()
  one = partitioning.make_mesh(partitioning.MeshConfig(), jax.devices()[:1])
  saved, _, _ = create_sharded_state(saved_config, tx, one, RULES, seed=1)
  ckpt = checkpoints.Checkpointer(str(tmp_path / "checkpoints"))
  ckpt.save(7, saved, {"batches_consumed": 0}, saved_config.to_dict(), force=True)
  ckpt.wait()
  ckpt.close()

  mesh = partitioning.make_mesh(partitioning.MeshConfig(data=1, fsdp=4, model=2))
  abstract, shardings, boxed = state_shardings(target_config, tx, mesh, RULES)
  params, step = checkpoints.restore_params(str(tmp_path), abstract.params, shardings.params)
  assert step == 7
  expected = scan_layout.to_layout(jax.device_get(saved.params), target_config.scan_layers)
  assert jax.tree.structure(params) == jax.tree.structure(expected)
  for a, e in zip(jax.tree.leaves(params), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(np.asarray(a), e)
  partitioning.assert_params_sharded(params, boxed, mesh, RULES, min_size=1)

  # Resuming a run in the other layout is refused with the fix, not silently restarted.
  ckpt = checkpoints.Checkpointer(str(tmp_path / "checkpoints"))
  try:
    with pytest.raises(checkpoints.IncompatibleCheckpointError,
                       match=f"scan_layers={saved_config.scan_layers}"):
      ckpt.restore_latest(abstract, shardings)
  finally:
    ckpt.close()


def test_scanned_run_trains_saves_and_resumes_as_if_uninterrupted(tmp_path):
  """The real train() on the demo data, fsdp=4 x model=2, Adafactor (per-layer statistics
  under multi_transform are saved and restored by orbax): 3 + 3 steps == 6 steps."""
  from xlt import trainer
  from xlt.data import DataConfig

  def run(model_dir, steps):
    trainer.train(
        model_dir=str(model_dir), model=SCANNED,
        data=DataConfig("demo_mix", {"inputs": 32, "targets": 8}, batch_size=8, pack=False,
                        vocabulary="byte"),
        train_steps=steps, optimizer=OptimizerConfig(name="adafactor", schedule=CONSTANT),
        mesh=partitioning.MeshConfig(data=1, fsdp=4, model=2),
        checkpoint=checkpoints.CheckpointConfig(save_every_steps=3, async_save=False),
        log_every_steps=100, progress_bar=False)
    with open(model_dir / "train_metrics.jsonl") as f:
      return [json.loads(line) for line in f]

  whole = run(tmp_path / "whole", 6)
  run(tmp_path / "split", 3)
  resumed = run(tmp_path / "split", 6)
  assert [m["step"] for m in resumed] == [1, 2, 3, 4, 5, 6]
  assert [m["loss"] for m in resumed] == [m["loss"] for m in whole]
  assert whole[-1]["loss"] < whole[0]["loss"]
