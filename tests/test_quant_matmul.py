"""Fused dequantize-matmul kernels (xlt/kernels) against the float32 reference.

The Pallas kernels run in interpret mode on CPU: TPU with `pltpu.InterpretParams()`, GPU
with the Mosaic GPU interpreter (SMEM, TMA and wgmma simulated). Interpret mode is slow,
so each kernel gets a hand-picked list of cases that together cover every bit width,
every group size (per-channel, 32, 64, 128, 256), M in {1, 5, 128} and edge blocks,
instead of the full product (the XLA path, which is cheap, gets the full product).

Tolerances, per dtype (never loosened to pass):
  float32: |y - ref| <= 1e-5 |ref| + 1e-5 max|ref|. Both sides accumulate in float32 with
    exact products; only the summation order differs (observed ~5e-7 of max|ref|).
  bfloat16 x: the kernels dequantize W to bf16 (for the MXU / tensor cores) and round y to
    bf16, so they are compared with the reference of the bf16-rounded W: the output
    rounding is at most 2^-8 relative, hence rtol 2^-7, atol 1e-3 max|ref| for the
    summation order. A mistake in unpacking or grouping is O(max|ref|) and fails both.
"""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xlt.kernels import quant_matmul as qmm
from xlt.kernels import quant_matmul_gpu, quant_matmul_tpu
from xlt.quant import rtn

F32_TOL = dict(rtol=1e-5, atol_frac=1e-5)
BF16_TOL = dict(rtol=2.0 ** -7, atol_frac=1e-3)


def make_case(m, k, n, bits, group, dtype=jnp.float32, seed=0):
  kw, kx = jax.random.split(jax.random.key(seed))
  w = jax.random.normal(kw, (k, n), jnp.float32)
  qkernel = rtn.quantize(w, bits, group)
  x = jax.random.normal(kx, (m, k), jnp.float32).astype(dtype)
  return x, qkernel


def oracle(x, qkernel):
  """float32 reference; for bf16 x, of the bf16-rounded W_hat that the kernels use."""
  if x.dtype == jnp.float32:
    return qmm.quant_matmul_reference(x, **qkernel)
  w = rtn.dequantize(qkernel, x.shape[-1]).astype(x.dtype).astype(jnp.float32)
  return jnp.dot(x.astype(jnp.float32), w, precision=jax.lax.Precision.HIGHEST)


def assert_close(y, ref, rtol, atol_frac):
  y = np.asarray(jnp.asarray(y, jnp.float32))
  ref = np.asarray(ref, np.float32)
  assert y.shape == ref.shape
  atol = atol_frac * float(np.abs(ref).max())
  err = np.abs(y - ref) - (atol + rtol * np.abs(ref))
  assert (err <= 0).all(), f"max excess {err.max():.3g} (max|ref| {np.abs(ref).max():.3g})"


def tol(dtype):
  return F32_TOL if dtype == jnp.float32 else BF16_TOL


# (bits, group, m, k, n, block overrides): every bit width and every group size at least
# twice; blocks are made small so that several K steps, slabs and edge blocks occur.
TPU_CASES = [
    (4, 32, 5, 256, 384, dict(block_n=128, block_k=128)),  # 4 groups per K block
    (2, 0, 1, 512, 200, dict(block_n=128)),  # per-channel; N edge block
    (3, 64, 128, 256, 128, {}),
    (8, 256, 5, 512, 256, dict(block_k=128)),  # 2 K blocks per group
    (4, 128, 20, 1024, 256, dict(block_m=8, block_k=256)),  # M edge block
    (2, 256, 5, 1024, 128, {}),
    (3, 0, 1, 256, 384, dict(block_n=128)),
    (8, 32, 128, 256, 200, dict(block_n=128)),
    (4, 0, 128, 512, 384, {}),
    (2, 64, 1, 512, 200, {}),
    (3, 128, 5, 512, 384, dict(block_k=128)),
]

# The GPU kernel is for 16-bit x (wgmma); N a multiple of 64, K/p of 64.
GPU_CASES = [
    (4, 32, 5, 256, 384, {}),  # 4 groups per K block (row select)
    (2, 0, 1, 256, 128, {}),  # K/p = 64: 64-row K block
    (3, 64, 128, 256, 128, {}),
    (8, 256, 5, 512, 192, {}),  # N tile 64
    (4, 128, 70, 512, 128, dict(block_m=64)),  # 2 M tiles, M padded
    (2, 32, 5, 512, 256, {}),
    (3, 0, 1, 256, 384, {}),
    (8, 64, 16, 256, 128, {}),
    (4, 0, 128, 256, 256, {}),
    (2, 256, 5, 1024, 128, {}),
    (3, 128, 1, 256, 64, {}),
]


def _case_id(case):
  bits, group, m, k, n = case[:5]
  return f"b{bits}-g{group or 'ch'}-{m}x{k}x{n}"


@pytest.mark.parametrize("bits", rtn.BITS)
@pytest.mark.parametrize("group", rtn.GROUP_SIZES)
@pytest.mark.parametrize("m,k,n", [(1, 256, 384), (5, 512, 200), (128, 256, 128)])
def test_xla_path_matches_reference(bits, group, m, k, n):
  x, qkernel = make_case(m, k, n, bits, group)
  y = jax.jit(lambda x, q: qmm.quant_matmul(x, **q, impl="xla"))(x, qkernel)
  assert y.dtype == jnp.float32
  assert_close(y, oracle(x, qkernel), **F32_TOL)


@pytest.mark.parametrize("case", TPU_CASES, ids=_case_id)
def test_tpu_kernel_matches_reference(case):
  bits, group, m, k, n, blocks = case
  x, qkernel = make_case(m, k, n, bits, group)
  assert quant_matmul_tpu.unsupported(m, k, qkernel["codes"].shape,
                                      qkernel["scales"].shape) is None
  y = quant_matmul_tpu.quant_matmul(x, **qkernel, interpret=True, **blocks)
  assert_close(y, oracle(x, qkernel), **F32_TOL)


@pytest.mark.parametrize("case", GPU_CASES, ids=_case_id)
def test_gpu_kernel_matches_reference(case):
  bits, group, m, k, n, blocks = case
  x, qkernel = make_case(m, k, n, bits, group, dtype=jnp.bfloat16)
  assert quant_matmul_gpu.unsupported(m, k, qkernel["codes"].shape, qkernel["scales"].shape,
                                      x.dtype) is None
  y = quant_matmul_gpu.quant_matmul(x, **qkernel, interpret=True, **blocks)
  assert y.dtype == jnp.bfloat16
  assert_close(y, oracle(x, qkernel), **BF16_TOL)


@pytest.mark.parametrize("impl", ["xla", "tpu"])
def test_bf16_input(impl):
  x, qkernel = make_case(5, 512, 256, 4, 64, dtype=jnp.bfloat16)
  y = qmm.quant_matmul(x, **qkernel, impl=impl, interpret=True)
  assert y.dtype == jnp.bfloat16
  assert_close(y, oracle(x, qkernel), **BF16_TOL)


def test_leading_dims_and_float16_on_gpu():
  x, qkernel = make_case(6, 256, 128, 4, 32, dtype=jnp.float16)
  y = qmm.quant_matmul(x.reshape(2, 3, 256), **qkernel, impl="gpu", interpret=True)
  assert y.shape == (2, 3, 128) and y.dtype == jnp.float16
  assert_close(y.reshape(6, 128), oracle(x, qkernel), **BF16_TOL)


@pytest.mark.parametrize("impl,dtype,group", [("xla", jnp.float32, 32),
                                              ("tpu", jnp.float32, 0),
                                              ("gpu", jnp.bfloat16, 64)])
def test_gradients_match_reference(impl, dtype, group):
  x, qkernel = make_case(5, 512, 128, 4, group, dtype=dtype)
  codes, zeros = qkernel["codes"], qkernel["zeros"]
  # A cotangent that bf16 represents exactly, so that dy is the same on both sides.
  r = jax.random.normal(jax.random.key(7), (5, 128)).astype(dtype).astype(jnp.float32)

  def loss(x, scales):
    y = qmm.quant_matmul(x, codes, scales, zeros, impl=impl, interpret=True)
    return jnp.sum(y.astype(jnp.float32) * r)

  def loss_ref(x, scales):
    return jnp.sum(qmm.quant_matmul_reference(x, codes, scales, zeros) * r)

  dx, ds = jax.jit(jax.grad(loss, (0, 1)))(x, qkernel["scales"])
  dx_ref, ds_ref = jax.grad(loss_ref, (0, 1))(x, qkernel["scales"])
  assert dx.dtype == dtype and ds.dtype == jnp.float32
  assert_close(dx, dx_ref, **tol(dtype))
  assert_close(ds, ds_ref, **F32_TOL)  # dscales is computed in float32 either way


def test_integer_inputs_get_float0_cotangents():
  x, qkernel = make_case(2, 256, 128, 4, 32)
  grads = jax.grad(lambda q: qmm.quant_matmul(x, **q).sum(), allow_int=True)(qkernel)
  assert grads["codes"].dtype == jax.dtypes.float0
  assert grads["zeros"].dtype == jax.dtypes.float0
  assert grads["scales"].dtype == jnp.float32 and float(jnp.abs(grads["scales"]).max()) > 0


def _jaxpr(x, qkernel, **kwargs) -> str:
  return str(jax.make_jaxpr(lambda x: qmm.quant_matmul(x, **qkernel, **kwargs))(x))


def test_auto_impl_on_cpu_is_xla():
  assert jax.default_backend() == "cpu"
  assert qmm.resolve_impl(None) == "xla"
  x, qkernel = make_case(5, 512, 256, 4, 64)
  text = _jaxpr(x, qkernel)
  assert "pallas_call" not in text and "wgmma" not in text
  assert_close(qmm.quant_matmul(x, **qkernel), oracle(x, qkernel), **F32_TOL)
  with pytest.raises(ValueError, match="impl"):
    qmm.quant_matmul(x, **qkernel, impl="triton")


def test_forced_impl_uses_the_kernel_when_it_tiles():
  x, qkernel = make_case(5, 512, 256, 4, 64)
  assert "pallas_call" in _jaxpr(x, qkernel, impl="tpu", interpret=True)
  xb = x.astype(jnp.bfloat16)
  assert "wgmma" in _jaxpr(xb, qkernel, impl="gpu", interpret=True)


@pytest.mark.parametrize("impl,m,k,n,dtype", [
    ("tpu", 5, 128, 256, jnp.float32),  # 4-bit: K/p = 64, no 128-row K block
    ("gpu", 5, 512, 200, jnp.bfloat16),  # N not a multiple of 64
    ("gpu", 5, 512, 256, jnp.float32),  # wgmma would need tf32, K-major
])
def test_untileable_shape_falls_back_to_xla(impl, m, k, n, dtype, caplog):
  x, qkernel = make_case(m, k, n, 4, 32, dtype=dtype)
  text = _jaxpr(x, qkernel, impl=impl, interpret=True)
  assert "pallas_call" not in text and "wgmma" not in text
  with caplog.at_level(logging.DEBUG, logger=qmm.__name__):
    y = qmm.quant_matmul(x, **qkernel, impl=impl, interpret=True)
  assert "using XLA" in caplog.text
  assert_close(y, oracle(x, qkernel), **tol(dtype))


def test_inside_a_flax_module_under_jit():
  import flax.linen as nn

  class QuantDense(nn.Module):
    qkernel: dict

    @nn.compact
    def __call__(self, x):
      scales = self.param("scales", lambda _: self.qkernel["scales"])
      return qmm.quant_matmul(x, self.qkernel["codes"], scales, self.qkernel["zeros"],
                              impl="tpu", interpret=True)

  x, qkernel = make_case(4, 256, 128, 4, 128)
  module = QuantDense(qkernel)
  params = module.init(jax.random.key(0), x)
  y = jax.jit(module.apply)(params, x)
  assert_close(y, oracle(x, qkernel), **F32_TOL)
  g = jax.jit(jax.grad(lambda p: module.apply(p, x).sum()))(params)
  assert g["params"]["scales"].shape == qkernel["scales"].shape


def test_gpu_kernel_lowers_for_cuda():
  """Runs the Pallas -> Mosaic GPU lowering (layout inference, wgmma operand checks)."""
  for m, k, n, bits, group in [(16, 1024, 512, 4, 128), (1, 512, 192, 2, 32),
                               (200, 512, 256, 8, 0)]:
    qkernel = jax.eval_shape(lambda: rtn.quantize(jnp.zeros((k, n)), bits, group))
    x = jax.ShapeDtypeStruct((m, k), jnp.bfloat16)
    lowered = jax.jit(quant_matmul_gpu.quant_matmul).trace(x, **qkernel).lower(
        lowering_platforms=("cuda",))
    assert "mosaic_gpu" in lowered.as_text()


def test_tpu_kernel_lowers_for_tpu(monkeypatch):
  """Runs the Pallas -> Mosaic TPU lowering (block shape rules) as for a TPU v5e.

  Lowering asks for the TPU generation of the current device; a CPU has none, so the
  test registers v5e's info for "cpu" in jax's (private) table, or skips if that moved.
  """
  tpu_info = pytest.importorskip("jax._src.pallas.mosaic.tpu_info")
  if not all(hasattr(tpu_info, a) for a in ("registry", "get_tpu_info_for_chip",
                                            "ChipVersion", "get_tpu_info")):
    pytest.skip("jax's TPU info table changed")
  monkeypatch.setitem(tpu_info.registry, "cpu", lambda: tpu_info.get_tpu_info_for_chip(
      tpu_info.ChipVersion.TPU_V5E, 1))
  try:
    for m, k, n, bits, group, dtype in [(16, 4096, 4096, 4, 128, jnp.bfloat16),
                                        (5, 256, 384, 4, 32, jnp.bfloat16),
                                        (1, 512, 200, 2, 0, jnp.float32)]:
      qkernel = jax.eval_shape(lambda: rtn.quantize(jnp.zeros((k, n)), bits, group))
      x = jax.ShapeDtypeStruct((m, k), dtype)
      lowered = jax.jit(quant_matmul_tpu.quant_matmul).trace(x, **qkernel).lower(
          lowering_platforms=("tpu",))
      assert "tpu_custom_call" in lowered.as_text()
  finally:
    getattr(tpu_info.get_tpu_info, "cache_clear", lambda: None)()


def test_environment_variable_chooses_the_implementation(monkeypatch):
  """XLT_QUANT_MATMUL overrides the by-backend choice (the escape hatch for a kernel that
  fails on some chip or jax version)."""
  monkeypatch.setenv(qmm.IMPL_ENV, "tpu")
  assert qmm.resolve_impl(None) == "tpu"
  assert qmm.resolve_impl("xla") == "xla"  # an explicit impl still wins
  monkeypatch.setenv(qmm.IMPL_ENV, "cuda")
  with pytest.raises(ValueError, match="XLT_QUANT_MATMUL='cuda'"):
    qmm.resolve_impl(None)
  monkeypatch.delenv(qmm.IMPL_ENV)
  assert qmm.resolve_impl(None) == "xla"  # CPU
