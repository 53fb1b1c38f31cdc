"""PEQA: round-to-nearest quantization exactly as its formula, the packed storage, quantized
models equal to float models holding the dequantized weights, PEQA training through the
real train() (only the scales move), `xlt quantize`, and the memory of the big configs."""
import subprocess
import sys

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from test_pulse import logged_losses, train_on_pulse_task
from conftest import REPO_ROOT, subprocess_env
from xlt import checkpoints, optimizers, trainable
from xlt.models import TINY, Transformer
from xlt.models.config import MT5_SIZES
from xlt.models.llama import LLAMA_SIZES, LLAMA_TINY, Llama
from xlt.models.llama import init_params as llama_init
from xlt.quant import rtn
from xlt.quant import tree as quant_tree
from xlt.train_state import boxed_params

# ------------------------------------------------------------------ the format


def _rtn_numpy(w: np.ndarray, bits: int, group: int, scales: np.ndarray):
  """DESIGN.md's formula written out in numpy float32, independent of xlt.quant: the
  range scale s0 [G, N], the zero-points, the codes [K, N] and W_hat = s0 * (q - z).

  XLA's float32 division on CPU may differ from IEEE division by one ulp, so the scale is
  checked to 1 ulp and the codes, zero-points and W_hat are then derived exactly from the
  stored scale."""
  k, n = w.shape
  g = k if group == 0 else group
  top = np.float32(2 ** bits - 1)
  blocks = w.reshape(k // g, g, n)
  low = np.minimum(blocks.min(axis=1), np.float32(0))
  high = np.maximum(blocks.max(axis=1), np.float32(0))
  s0 = ((high - low) / top).astype(np.float32)
  s0 = np.where(s0 > 0, s0, np.float32(1))
  z = np.clip(np.round(-low / scales), 0, top)
  q = np.clip(np.round(blocks / scales[:, None]) + z[:, None], 0, top)
  w_hat = (scales[:, None] * (q - z[:, None])).reshape(k, n)
  return s0, z, q.reshape(k, n), w_hat


@pytest.mark.parametrize("bits", rtn.BITS)
@pytest.mark.parametrize("group", [0, 32, 128])
def test_dequantized_weights_equal_the_rtn_formula_exactly(bits, group):
  w = np.array(jax.random.normal(jax.random.key(bits), (256, 40)), np.float32)
  w[:, 3] = 0.0  # an all-zero column
  w[:, 5] = np.abs(w[:, 5])  # a column with no negative entry
  q = rtn.quantize(jnp.asarray(w), bits, group)
  assert q["codes"].dtype == jnp.uint8 and q["zeros"].dtype == jnp.uint8
  assert q["codes"].shape == (256 // rtn.codes_per_byte(bits), 40)
  assert q["scales"].shape == (256 // (group or 256), 40)
  scales = np.asarray(q["scales"])
  s0, z, codes, w_hat = _rtn_numpy(w, bits, group, scales)
  np.testing.assert_array_max_ulp(scales, s0, maxulp=1)
  np.testing.assert_array_equal(np.asarray(q["zeros"]), z)
  np.testing.assert_array_equal(np.asarray(rtn.unpack(q["codes"], 256)), codes)
  np.testing.assert_array_equal(np.asarray(rtn.dequantize(q, 256)), w_hat)
  assert np.abs(w_hat - w).max() <= scales.max()  # within one step (clamping included)


@pytest.mark.parametrize("bits", [2, 4])
def test_packing_cuts_the_input_axis_into_slabs(bits):
  p, width = rtn.codes_per_byte(bits), bits
  q = np.asarray(jax.random.randint(jax.random.key(1), (64, 7), 0, 2 ** bits), np.uint8)
  packed = np.asarray(rtn.pack(jnp.asarray(q), bits))
  assert packed.shape == (64 // p, 7)
  slab = 64 // p
  for j in range(p):  # slot j of byte row r holds code row j * K/p + r
    np.testing.assert_array_equal((packed >> (j * width)) & (2 ** width - 1), q[j * slab:(j + 1) * slab])
  np.testing.assert_array_equal(np.asarray(rtn.unpack(jnp.asarray(packed), 64)), q)


# ------------------------------------------------------------------ models


def _logits(model, params, *tokens):
  return jax.jit(lambda p, *t: model.apply({"params": p}, *t))(params, *tokens)


def _float_and_quantized(config, init, bits=4, group=32):
  qconfig = config.replace(quant_bits=bits, quant_group_size=group)
  float_params = nn.meta.unbox(init(config, jax.random.key(3)))
  target = nn.meta.unbox(jax.eval_shape(lambda r: init(qconfig, r), jax.random.key(0)))
  quantized = quant_tree.quantize_like(float_params, target, qconfig)
  dequantized = quant_tree.dequantize_like(quantized, float_params)
  return qconfig, quantized, dequantized


@pytest.mark.parametrize("tied", [False, True])
def test_quantized_t5_equals_t5_with_the_dequantized_weights(tied):
  config = TINY.replace(tie_word_embeddings=tied)
  qconfig, quantized, dequantized = _float_and_quantized(config, boxed_params)
  # Every weight matrix and the embedding are quantized; norms and biases are not.
  flat = {"/".join(k): v for k, v in
          traverse_util.flatten_dict(quantized).items()}
  assert "shared/embedding/codes" in flat and "encoder/layers_0/mlp/wo/kernel/codes" in flat
  assert "encoder/final_norm/scale" in flat
  tokens = jax.random.randint(jax.random.key(4), (2, 9), 1, TINY.vocab_size)
  got = _logits(Transformer(qconfig), quantized, tokens, tokens)
  want = _logits(Transformer(config), dequantized, tokens, tokens)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5, rtol=2e-5)  # float32


def test_quantized_llama_equals_llama_with_the_dequantized_weights():
  init = lambda c, r: llama_init(c, r, boxed=True)  # noqa: E731
  qconfig, quantized, dequantized = _float_and_quantized(LLAMA_TINY, init, bits=3, group=0)
  tokens = jax.random.randint(jax.random.key(5), (2, 11), 0, LLAMA_TINY.vocab_size)
  got = _logits(Llama(qconfig), quantized, tokens)
  want = _logits(Llama(LLAMA_TINY), dequantized, tokens)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5, rtol=2e-5)


def test_scanned_layers_quantize_like_per_layer_ones():
  from xlt.models import scan_layout
  qconfig = TINY.replace(quant_bits=4, quant_group_size=32)
  float_params = nn.meta.unbox(boxed_params(TINY, jax.random.key(3)))
  plain = quant_tree.quantize_like(
      float_params, nn.meta.unbox(jax.eval_shape(lambda r: boxed_params(qconfig, r),
                                                 jax.random.key(0))), qconfig)
  scanned_config = qconfig.replace(scan_layers=True)
  scanned = quant_tree.quantize_like(
      scan_layout.to_layout(float_params, True),
      nn.meta.unbox(jax.eval_shape(lambda r: boxed_params(scanned_config, r), jax.random.key(0))),
      scanned_config)
  np.testing.assert_array_equal(scanned["encoder"]["layers"]["mlp"]["wo"]["kernel"]["codes"][1],
                                plain["encoder"]["layers_1"]["mlp"]["wo"]["kernel"]["codes"])
  tokens = jnp.arange(1, 13).reshape(2, 6)
  np.testing.assert_allclose(
      np.asarray(_logits(Transformer(scanned_config), scanned, tokens, tokens)),
      np.asarray(_logits(Transformer(qconfig), plain, tokens, tokens)), atol=1e-5)


def test_bad_quantization_settings_name_the_weight_and_binding():
  with pytest.raises(ValueError, match=r"shared/embedding \(64, 384\).*T5Config.quant_group_size"):
    boxed_params(TINY.replace(quant_bits=4, quant_group_size=128), jax.random.key(0))  # K = 64
  with pytest.raises(ValueError, match=r"encoder/layers_0/attention/query/kernel"):
    boxed_params(TINY.replace(quant_bits=4, quant_group_size=128, quant_pattern="encoder/.*"),
                 jax.random.key(0))
  with pytest.raises(ValueError, match=r"T5Config.quant_bits must be"):
    TINY.replace(quant_bits=5)
  with pytest.raises(ValueError, match=r"T5Config.quant_pattern"):
    TINY.replace(quant_bits=4, quant_pattern="(")
  params = nn.meta.unbox(boxed_params(TINY, jax.random.key(0)))
  with pytest.raises(ValueError, match=r"train.trainable_params='.*/nothing' selects no"):
    trainable.check(params, ".*/nothing")


# ------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def float_run(tmp_path_factory):
  """A float tiny checkpoint (random init, written as `xlt convert hf` writes one): what
  PEQA starts from."""
  from xlt.convert import hf_t5, output
  model_dir = str(tmp_path_factory.mktemp("float_run"))
  params = jax.device_get(nn.meta.unbox(boxed_params(TINY, jax.random.key(7))))
  output.write_checkpoint(model_dir, params, TINY.to_dict(), hf_t5.gin_bindings(TINY))
  return model_dir


def test_peqa_trains_only_the_scales_and_lowers_the_loss(float_run, tmp_path):
  qconfig = TINY.replace(quant_bits=4, quant_group_size=32)
  model_dir = tmp_path / "peqa"
  result = train_on_pulse_task(model_dir, qconfig, steps=10, lr=1e-2,
                               initial_checkpoint_path=str(float_run),
                               trainable_params=".*/scales")
  assert result.final_step == 10
  losses = logged_losses(model_dir)
  assert losses[-1] < 0.9 * losses[0], losses

  from xlt.loaded_model import load_model
  tuned = load_model(str(model_dir))
  assert tuned.config == qconfig  # the run's checkpoint records the quantized config
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tuned.params)
  start = jax.jit(lambda f: quant_tree.quantize_like(f, abstract, qconfig))(
      load_model(str(float_run)).params)
  flat_start = traverse_util.flatten_dict(start)
  flat_tuned = traverse_util.flatten_dict(tuned.params)
  moved = []
  for path, before in flat_start.items():
    after = np.asarray(flat_tuned[path])
    if path[-1] in ("codes", "zeros"):
      assert after.dtype == np.uint8
      np.testing.assert_array_equal(after, np.asarray(before), err_msg="/".join(path))
    elif path[-1] == "scales":
      moved.append(not np.array_equal(after, np.asarray(before)))
    else:  # norms, relative position biases: frozen
      np.testing.assert_array_equal(after, np.asarray(before), err_msg="/".join(path))
  assert moved and all(moved)


def test_optimizer_state_holds_only_the_trained_parameters():
  qconfig = TINY.replace(quant_bits=4, quant_group_size=32)
  tx, _ = optimizers.OptimizerConfig(name="adamw").build()
  from xlt.train_state import init_state
  state = jax.eval_shape(lambda r: init_state(qconfig, tx, r, ".*/scales"), jax.random.key(0))
  paths = [jax.tree_util.keystr(p) for p, leaf in jax.tree_util.tree_leaves_with_path(
      state.opt_state) if leaf.ndim]
  assert paths and all(p.endswith("['scales']") for p in paths), paths[:5]


def test_xlt_quantize_writes_a_checkpoint_that_loads_and_refuses_overwrites(float_run, tmp_path):
  out = tmp_path / "q4"
  cmd = [sys.executable, "-m", "xlt", "quantize", str(float_run), str(out), "--bits", "4",
         "--group", "32"]
  proc = subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "parameter bytes:" in proc.stdout and "of bfloat16" in proc.stdout
  assert (out / "model.gin").is_file() and "T5Config.quant_bits = 4" in (out / "model.gin").read_text()

  from xlt.loaded_model import load_model
  loaded = load_model(str(out))
  assert loaded.config.quant_bits == 4 and loaded.config.quant_group_size == 32
  reference = load_model(str(float_run))
  abstract = nn.meta.unbox(jax.eval_shape(lambda r: boxed_params(loaded.config, r),
                                          jax.random.key(0)))
  want = jax.jit(lambda f: quant_tree.quantize_like(f, abstract, loaded.config))(reference.params)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               loaded.params, want)
  # A quantized checkpoint into a model quantized differently is refused, by name.
  other = loaded.config.replace(quant_bits=8)
  with pytest.raises(checkpoints.IncompatibleCheckpointError, match="quantized with"):
    quant_tree.restore_params(str(out), other, abstract, None, loaded.mesh, loaded.rules,
                              boxed_params)
  again = subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True,
                         text=True, timeout=600)
  assert again.returncode == 2 and "refusing to overwrite" in again.stderr
  twice = subprocess.run(cmd[:4] + [str(out), str(tmp_path / "q4q4")], cwd=REPO_ROOT,
                         env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert twice.returncode == 2 and "already quantized" in twice.stderr


# ------------------------------------------------------------------ memory


@pytest.mark.parametrize("name", ["mt5_xl", "llama_7b"])
def test_4bit_group128_parameters_are_at_most_30_percent_of_bfloat16(name):
  """jax.eval_shape only: nothing is allocated."""
  if name == "mt5_xl":
    config = MT5_SIZES["xl"]
    init = boxed_params
  else:
    config = LLAMA_SIZES["7b"]
    init = lambda c, r: llama_init(c, r, boxed=True)  # noqa: E731
  shapes = lambda c: nn.meta.unbox(jax.eval_shape(lambda r: init(c, r), jax.random.key(0)))  # noqa: E731
  float_tree = shapes(config)
  bf16_bytes = sum(x.size * 2 for x in jax.tree.leaves(float_tree))
  quantized_bytes = rtn.nbytes(shapes(config.replace(quant_bits=4, quant_group_size=128)))
  assert quantized_bytes <= 0.30 * bf16_bytes, quantized_bytes / bf16_bytes
