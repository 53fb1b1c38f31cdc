"""Fused dequantize-matmul kernel vs XLA: time, TFLOP/s, effective GB/s, share of HBM.

For y = x @ W_hat with x bf16 [M, K] and W quantized (xlt.quant.rtn) [K, N], times
  kernel        xlt.kernels.quant_matmul with the backend's Pallas kernel (Mosaic GPU on
                "gpu", Mosaic TPU on "tpu"); `kernel_used` false where it fell back
  xla_dequant   the same call with impl="xla": dequantize to bf16, then one dot
  xla_bf16_dot  a plain bf16 x @ W dot, the unquantized baseline
Effective bytes are those a perfect kernel moves: x + codes + scales + zeros + y (for
the bf16 dot, x + W + y); GB/s is that over the time, and `hbm_fraction` divides it by
the bandwidth measured in the same run (a jit'd a * 1.0001 over a large buffer: read +
write). Small M is bandwidth bound, so hbm_fraction is the number to watch there.

  python benchmarks/quant_matmul.py --out results.json            # on a GPU or TPU
  python benchmarks/quant_matmul.py --smoke --out smoke.json      # CPU: tiny, interpret

Imports only jax, numpy and xlt.quant / xlt.kernels (no TensorFlow, no seqio).
"""
from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from xlt.kernels import quant_matmul as qmm
from xlt.quant import rtn

FULL = dict(m=(1, 16, 128, 2048), kn=(4096, 8192), bits=(4, 8), group=(128, 0))
SMOKE = dict(m=(16,), kn=(256,), bits=(4, 8), group=(128, 0))


def seconds_per_call(fn, *args, iters: int, repeats: int = 3) -> float:
  """Best over `repeats` of the mean over `iters` back-to-back calls (after a warm-up)."""
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(iters):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / iters)
  return best


def hbm_gbps(nbytes: int, iters: int) -> float:
  """Device memory bandwidth: read + write of an nbytes float32 buffer."""
  a = jnp.ones((nbytes // 4,), jnp.float32)
  scale = jax.jit(lambda a: a * 1.0001)
  return 2 * nbytes / seconds_per_call(scale, a, iters=iters) / 1e9


def kernel_impls(smoke: bool) -> list[tuple[str, object]]:
  """(impl, interpret) pairs to time as "kernel": the backend's, or both in interpret mode."""
  backend = jax.default_backend()
  if backend in ("gpu", "tpu"):
    return [(backend, False)]
  return [("gpu", True), ("tpu", True)] if smoke else []


def bench_shape(m: int, kn: int, bits: int, group: int, impls, iters: int,
                hbm: float) -> list[dict]:
  k = n = kn
  kw, kx = jax.random.split(jax.random.key(0))
  w = jax.random.normal(kw, (k, n), jnp.float32) / np.sqrt(k)
  qkernel = rtn.quantize(w, bits, group)
  w_bf16 = w.astype(jnp.bfloat16)
  del w
  x = jax.random.normal(kx, (m, k), jnp.float32).astype(jnp.bfloat16)
  io_bytes = x.nbytes + m * n * 2  # x and y, bf16
  quant_bytes = io_bytes + rtn.nbytes(qkernel)
  flops = 2 * m * k * n
  cases = [("xla_dequant", "xla", False, quant_bytes), ("xla_bf16_dot", None, False,
                                                        io_bytes + w_bf16.nbytes)]
  cases += [("kernel", impl, interpret, quant_bytes) for impl, interpret in impls]
  rows = []
  for name, impl, interpret, nbytes in cases:
    if impl is None:
      fn, args = jax.jit(lambda x, w: x @ w), (x, w_bf16)
    else:
      fn = jax.jit(functools.partial(qmm.quant_matmul, impl=impl, interpret=interpret))
      args = (x, qkernel["codes"], qkernel["scales"], qkernel["zeros"])
    used = None
    if name == "kernel":
      used = qmm.kernel_module(impl).unsupported(
          m, k, qkernel["codes"].shape, qkernel["scales"].shape, x.dtype) is None
    t = seconds_per_call(fn, *args, iters=iters)
    gbps = nbytes / t / 1e9
    rows.append({"m": m, "k": k, "n": n, "bits": bits, "group": group, "variant": name,
                 "impl": impl or "xla", "interpret": bool(interpret), "kernel_used": used,
                 "time_s": t, "tflops": flops / t / 1e12, "bytes": nbytes, "gbps": gbps,
                 "hbm_fraction": gbps / hbm})
    row = rows[-1]
    print(f"M={m:5d} K=N={kn:5d} {bits}-bit g={group or 'ch':>3} {name:12s} "
          f"{row['impl']:>3}{' (interpret)' if interpret else ''}"
          f"{'' if used in (None, True) else ' (fell back to XLA)'}: {t * 1e6:10.1f} us  "
          f"{row['tflops']:8.3f} TFLOP/s  {gbps:8.1f} GB/s  {row['hbm_fraction']:6.1%} of HBM",
          flush=True)
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=None, help="write the results here as JSON")
  parser.add_argument("--smoke", action="store_true",
                      help="tiny shapes on CPU: XLA, and both kernels in interpret mode")
  parser.add_argument("--iters", type=int, default=None, help="calls per timing")
  args = parser.parse_args()

  grid = SMOKE if args.smoke else FULL
  iters = args.iters or (2 if args.smoke else 50)
  device = jax.devices()[0]
  hbm = hbm_gbps((8 if args.smoke else 1024) << 20, iters)
  print(f"{device.device_kind} ({jax.default_backend()}): measured memory bandwidth "
        f"{hbm:.1f} GB/s")
  impls = kernel_impls(args.smoke)
  rows = []
  for m, kn, bits, group in itertools.product(grid["m"], grid["kn"], grid["bits"],
                                              grid["group"]):
    rows += bench_shape(m, kn, bits, group, impls, iters, hbm)
  result = {"device": device.device_kind, "backend": jax.default_backend(),
            "jax_version": jax.__version__, "smoke": args.smoke, "iters": iters,
            "hbm_gbps": hbm, "imported_tensorflow": "tensorflow" in sys.modules,
            "imported_seqio": "seqio" in sys.modules, "results": rows}
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
