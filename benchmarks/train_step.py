"""Training throughput: tokens/s, step time and MFU of xlt's train step, vs HF PyTorch.

Synthetic full-length batches (no padding), so it needs no TensorFlow. The xlt step is
the real one (sharded state over all local devices, jit with donation). With --hf and
torch + transformers importable, the same model (same config, batch, lengths, dtype,
optimizer) is trained with Hugging Face's MT5ForConditionalGeneration and the ratio
xlt / HF is printed.

MFU = model FLOPs per step / (step time x peak FLOP/s). Model FLOPs count the matmuls
of a training step (3 x forward; rematerialised recomputation not counted):
  encoder layer, per input token:  2 x (4 d hd + 3 d ff + 2 L_in hd)
  decoder layer, per target token: 2 x (4 d hd + 2 d hd + 3 d ff + 2 L_tgt hd + 2 L_in hd)
                 per input token:  2 x (2 d hd)         (cross-attention keys / values)
  output layer,  per target token: 2 x d V
with d = d_model, hd = heads x d_kv, ff = d_ff (gated: 3 matrices; relu: 2), V = vocab.

  python benchmarks/train_step.py --size tiny --batch 8 --input_length 64 --target_length 16 --hf
  python benchmarks/train_step.py --size large --batch 32 --input_length 1024 --target_length 256 --hf
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from xlt import losses, optimizers, partitioning
from xlt.models import MT5_SIZES, TINY, T5Config, Transformer
from xlt.train_state import create_sharded_state
from xlt.train_step import jit_train_step, make_train_step

# Dense bf16 peak FLOP/s per device, by jax device_kind prefix.
PEAK_FLOPS = {"NVIDIA H100": 989e12, "NVIDIA H200": 989e12, "NVIDIA A100": 312e12,
              "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
              "TPU v6": 918e12}


def model_flops_per_step(config: T5Config, batch: int, input_length: int,
                         target_length: int) -> float:
  """Matmul FLOPs of one training step (see the module docstring)."""
  d, hd, ff, vocab = (config.d_model, config.num_heads * config.d_kv, config.d_ff,
                      config.vocab_size)
  mlp = (3 if config.feed_forward_proj == "gated-gelu" else 2) * d * ff
  encoder = config.num_encoder_layers * input_length * (4 * d * hd + mlp + 2 * input_length * hd)
  decoder = config.num_decoder_layers * (
      target_length * (4 * d * hd + 2 * d * hd + mlp + 2 * target_length * hd
                       + 2 * input_length * hd)
      + input_length * 2 * d * hd)
  head = target_length * d * vocab
  forward_macs = batch * (encoder + decoder + head)
  return 3 * 2 * forward_macs


def peak_flops(device) -> float | None:
  for prefix, flops in PEAK_FLOPS.items():
    if device.device_kind.startswith(prefix):
      return flops * jax.device_count()
  return None


def synthetic_batch(config: T5Config, batch: int, input_length: int, target_length: int,
                    seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  targets = rng.integers(2, config.vocab_size, (batch, target_length), dtype=np.int32)
  decoder_inputs = np.zeros_like(targets)
  decoder_inputs[:, 1:] = targets[:, :-1]
  return {"encoder_input_tokens": rng.integers(2, config.vocab_size, (batch, input_length),
                                               dtype=np.int32),
          "decoder_input_tokens": decoder_inputs, "decoder_target_tokens": targets,
          "decoder_loss_weights": np.ones((batch, target_length), np.float32)}


def time_xlt(config: T5Config, optimizer: str, batch: dict, steps: int) -> float:
  """Seconds per step of the jitted, sharded xlt train step (after compilation)."""
  mesh_config = partitioning.MeshConfig(data=1, fsdp=-1, model=1)
  mesh = partitioning.make_mesh(mesh_config)
  tx, schedule = optimizers.OptimizerConfig(
      name=optimizer, schedule=optimizers.Schedule(kind="constant", base=1e-4)).build()
  state, shardings, _ = create_sharded_state(config, tx, mesh, mesh_config.rules, seed=0)
  step = jit_train_step(make_train_step(Transformer(config), tx, schedule, losses.LossConfig()),
                        shardings, mesh)
  with partitioning.activation_rules(mesh, mesh_config.rules):
    state, metrics = step(state, batch)  # compile + first step
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
  return (time.perf_counter() - start) / steps


def time_hf(config: T5Config, optimizer: str, batch: dict, steps: int) -> float:
  """Seconds per step of the same model trained with transformers in PyTorch."""
  import torch
  import transformers

  device = "cuda" if torch.cuda.is_available() else "cpu"
  dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[config.dtype]
  hf_config = transformers.MT5Config(
      vocab_size=config.vocab_size, d_model=config.d_model, d_kv=config.d_kv,
      d_ff=config.d_ff, num_heads=config.num_heads, num_layers=config.num_encoder_layers,
      num_decoder_layers=config.num_decoder_layers,
      relative_attention_num_buckets=config.relative_attention_num_buckets,
      relative_attention_max_distance=config.relative_attention_max_distance,
      dropout_rate=config.dropout_rate, feed_forward_proj=config.feed_forward_proj,
      tie_word_embeddings=config.tie_word_embeddings, decoder_start_token_id=0)
  model = transformers.MT5ForConditionalGeneration(hf_config).to(device=device, dtype=dtype)
  model.train()
  if optimizer == "adamw":
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
  else:
    opt = transformers.optimization.Adafactor(model.parameters(), lr=1e-4,
                                              relative_step=False, scale_parameter=True)
  inputs = torch.as_tensor(batch["encoder_input_tokens"], device=device, dtype=torch.long)
  labels = torch.as_tensor(batch["decoder_target_tokens"], device=device, dtype=torch.long)

  def one_step():
    loss = model(input_ids=inputs, labels=labels).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

  one_step()  # warm-up (allocations, kernels)
  if device == "cuda":
    torch.cuda.synchronize()
  start = time.perf_counter()
  for _ in range(steps):
    loss = one_step()
  float(loss.detach())  # waits for the device
  return (time.perf_counter() - start) / steps


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="tiny", choices=["tiny", *MT5_SIZES])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--input_length", type=int, default=64)
  parser.add_argument("--target_length", type=int, default=16)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
  parser.add_argument("--optimizer", default="adafactor", choices=["adafactor", "adamw"])
  parser.add_argument("--remat_policy", default="none", choices=["none", "full", "dots_saveable"])
  parser.add_argument("--scan_layers", action="store_true", help="T5Config.scan_layers")
  parser.add_argument("--hf", action="store_true", help="also time Hugging Face (PyTorch)")
  parser.add_argument("--json", default=None, help="also write the numbers here")
  args = parser.parse_args()

  base = TINY if args.size == "tiny" else MT5_SIZES[args.size]
  config = base.replace(dtype=args.dtype, dropout_rate=0.0, remat_policy=args.remat_policy,
                        scan_layers=args.scan_layers)
  batch = synthetic_batch(config, args.batch, args.input_length, args.target_length)
  tokens = args.batch * (args.input_length + args.target_length)
  flops = model_flops_per_step(config, args.batch, args.input_length, args.target_length)
  device = jax.devices()[0]
  peak = peak_flops(device)

  xlt_s = time_xlt(config, args.optimizer, batch, args.steps)
  result = {"device": f"{jax.device_count()} x {device.device_kind}", "size": args.size,
            "batch": args.batch, "input_length": args.input_length,
            "target_length": args.target_length, "dtype": args.dtype,
            "optimizer": args.optimizer, "remat_policy": args.remat_policy,
            "scan_layers": args.scan_layers,
            "model_tflops_per_step": flops / 1e12, "xlt_step_s": xlt_s,
            "xlt_tokens_per_s": tokens / xlt_s,
            "xlt_mfu": flops / xlt_s / peak if peak else None}
  mfu = f"{result['xlt_mfu']:.1%}" if peak else "n/a (unknown peak FLOP/s for this device)"
  print(f"{result['device']} mT5-{args.size} batch {args.batch}, input {args.input_length}, "
        f"target {args.target_length}, {args.dtype}, {args.optimizer}, remat "
        f"{args.remat_policy}{', scanned layers' if args.scan_layers else ''}; model FLOPs/step "
        f"{flops / 1e12:.3f} TFLOP (matmuls, 3 x forward)")
  print(f"xlt: {xlt_s * 1e3:.1f} ms/step, {tokens / xlt_s:,.0f} tokens/s, MFU {mfu}")
  if args.hf:
    hf_s = time_hf(config, args.optimizer, batch, args.steps)
    result.update(hf_step_s=hf_s, hf_tokens_per_s=tokens / hf_s, xlt_over_hf=hf_s / xlt_s)
    print(f"HF transformers (PyTorch): {hf_s * 1e3:.1f} ms/step, {tokens / hf_s:,.0f} tokens/s; "
          f"xlt / HF = x{hf_s / xlt_s:.2f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
