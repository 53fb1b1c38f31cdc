"""Greedy decoding: KV cache vs re-running the full decoder for every token; and beam
search with the cache against that greedy baseline.

Prints the time per decoded batch of each and their ratios, measured in the same run on
whatever device jax sees (CPU here). No EOS, so every method runs all decode steps.
Needs no TensorFlow.

  python benchmarks/decode_kv_cache.py --size tiny --batch 8 --input_length 64 --decode_length 32
"""
from __future__ import annotations

import argparse
import json
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from xlt import decoding
from xlt.models import MT5_SIZES, TINY, Transformer
from xlt.train_state import boxed_params


def _full_forward_decode(model, params, enc, length):
  """Same algorithm as greedy_decode_without_cache, but jit-compiled as one loop."""
  batch = enc.shape[0]

  def body(i, carry):
    inputs, out = carry
    logits = model.apply({"params": params}, enc, inputs)
    token = jnp.argmax(jax.lax.dynamic_index_in_dim(logits, i, 1, keepdims=False), -1)
    out = out.at[:, i].set(token.astype(jnp.int32))
    inputs = jnp.where(jnp.arange(length)[None, :] == i + 1, token[:, None], inputs)
    return inputs, out

  zeros = jnp.zeros((batch, length), jnp.int32)
  return jax.lax.fori_loop(0, length, body, (zeros, zeros))[1]


def _time(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # compile
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn(*args))
  return (time.perf_counter() - start) / repeats


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="tiny", choices=["tiny", *MT5_SIZES])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--input_length", type=int, default=64)
  parser.add_argument("--decode_length", type=int, default=32)
  parser.add_argument("--num_beams", type=int, default=4, help="0: skip beam search")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--json", default=None, help="also write the numbers here")
  args = parser.parse_args()

  config = TINY if args.size == "tiny" else MT5_SIZES[args.size]
  config = config.replace(dropout_rate=0.0)
  model = Transformer(config)
  params = nn.meta.unbox(boxed_params(config, jax.random.key(0)))
  enc = jax.random.randint(jax.random.key(1), (args.batch, args.input_length), 2,
                           config.vocab_size)
  n = args.decode_length
  cached = jax.jit(lambda p, x: decoding.greedy_decode(model, p, x, n, eos_id=-1))
  full = jax.jit(lambda p, x: _full_forward_decode(model, p, x, n))
  t_cached = _time(cached, params, enc, repeats=args.repeats)
  t_full = _time(full, params, enc, repeats=args.repeats)
  result = {"device": jax.devices()[0].device_kind, "size": args.size, "batch": args.batch,
            "input_length": args.input_length, "decode_length": n,
            "kv_cache_s": t_cached, "full_forward_s": t_full, "speedup": t_full / t_cached}
  print(f"{result['device']} mT5-{args.size} batch {args.batch}, input {args.input_length}, "
        f"decode {n}: KV cache {t_cached*1e3:.1f} ms, full forward {t_full*1e3:.1f} ms, "
        f"speed-up x{result['speedup']:.2f}")
  if args.num_beams:
    k = args.num_beams
    beam = jax.jit(lambda p, x: decoding.beam_search(model, p, x, n, k, eos_id=-1))
    t_beam = _time(beam, params, enc, repeats=args.repeats)
    result.update(num_beams=k, beam_s=t_beam, beam_over_greedy=t_beam / t_cached)
    print(f"  beam search, {k} beams, KV cache: {t_beam*1e3:.1f} ms, "
          f"x{result['beam_over_greedy']:.2f} the greedy KV-cache time")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
