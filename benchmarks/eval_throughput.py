"""Rank-classification scoring throughput: scored choices/s of xlt vs HF PyTorch, same weights.

One scored choice = one row of a `_score_eval` batch: the summed log-probability of a
short target (the answer choice and its EOS) given a padded input, as
`xlt.scoring.score_batch` computes it for rank classification. The model is a random
MT5ForConditionalGeneration (or a real local snapshot, --hf_snapshot) saved with
`save_pretrained`, converted with `xlt.convert.hf_t5.convert_hf_checkpoint` (what
`xlt convert hf` does) and restored with `xlt.loaded_model.load_model`, so xlt and
Hugging Face transformers score THE SAME WEIGHTS on THE SAME synthetic batches. The two
score vectors are compared (max |diff|; asserted <= 1e-3 in float32), so the ratio
xlt / HF compares equal work. Compilation (xlt) and a warm-up forward (HF) are not timed;
the two sides take turns (--repeats passes each over the same --steps batches) and each
side's best pass counts, so a change in a shared machine's load hits both.

Compute dtype: `xlt convert hf` stores the T5Config default compute dtype (bfloat16) with
the checkpoint; here the xlt side computes in --dtype (or --xlt_dtype) like HF does, so
like is compared with like; both are printed. The HF side runs on cuda when
torch.cuda.is_available(), else on the CPU with torch.set_num_threads(CPU count); jax
uses whatever devices it finds (the batch is split over all of them). No TensorFlow or
SeqIO is imported.

  python benchmarks/eval_throughput.py --size tiny --batch 8 --steps 3 --input_length 64
  python benchmarks/eval_throughput.py --batch 32 --steps 3 --repeats 3 --json /tmp/eval.json
  python benchmarks/eval_throughput.py --hf_snapshot ~/mt5-small --batch 64 --dtype bfloat16
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable

import jax
import numpy as np

from xlt import partitioning, scoring, tpu_env
from xlt.convert import hf_t5
from xlt.loaded_model import load_model

EOS = 1
# Shapes of the random model (HF MT5Config names). "small" is mT5-small but for the vocab.
SIZES = {
    "tiny": dict(d_model=64, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
                 d_kv=16),
    "small": dict(d_model=512, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6,
                  d_kv=64),
}
DEFAULT_VOCAB = {"tiny": 384, "small": 32128}
FLOAT32_TOLERANCE = 1e-3


def cpu_count() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def random_snapshot(directory: str, size: str, vocab_size: int, seed: int = 0) -> None:
  """Saves a random float32 MT5ForConditionalGeneration (safetensors) into directory."""
  import torch
  import transformers

  torch.manual_seed(seed)
  config = transformers.MT5Config(
      vocab_size=vocab_size, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
      relative_attention_num_buckets=32, relative_attention_max_distance=128,
      dropout_rate=0.0, decoder_start_token_id=0, eos_token_id=EOS, pad_token_id=0,
      **SIZES[size])
  model = transformers.MT5ForConditionalGeneration(config).to(torch.float32)
  with torch.no_grad():
    # HF's init gives logits of std ~sqrt(d_model) and so log-probs in the hundreds; scale
    # the output head (tied to `shared` by transformers 5) to an untrained model's ~1.
    model.lm_head.weight.mul_(config.d_model ** -0.5)
  model.save_pretrained(directory, safe_serialization=True)


def synthetic_batches(vocab_size: int, batch: int, input_length: int, target_length: int,
                      count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
  """`count` score batches of one shape: inputs right-padded to input_length (real lengths
  uniform in [input_length // 4, input_length], ending in EOS), choice targets of 2 ..
  target_length tokens ending in EOS."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(count):
    inputs = rng.integers(2, vocab_size, (batch, input_length), dtype=np.int32)
    targets = rng.integers(2, vocab_size, (batch, target_length), dtype=np.int32)
    in_lens = rng.integers(max(1, input_length // 4), input_length + 1, batch)
    tgt_lens = rng.integers(min(2, target_length), target_length + 1, batch)
    for i in range(batch):
      inputs[i, in_lens[i] - 1] = EOS
      inputs[i, in_lens[i]:] = 0
      targets[i, tgt_lens[i] - 1] = EOS
      targets[i, tgt_lens[i]:] = 0
    out.append(scoring.enc_dec_features(inputs, targets))
  return out


def xlt_scorer(checkpoint: str, dtype: str, batches: list[dict]) -> tuple[Callable, dict]:
  """Restores the converted checkpoint with compute dtype `dtype` and compiles the scorer on
  batches[0]; returns run(batches) -> (seconds, scores) and facts about the set-up."""
  from xlt import checkpoints
  from xlt.models import T5Config

  stored = T5Config(**checkpoints.read_model_config(checkpoint))
  lm = load_model(checkpoint, model=stored.replace(dtype=dtype, dropout_rate=0.0))
  shards = lm.mesh.shape["data"] * lm.mesh.shape["fsdp"]
  if batches[0]["encoder_input_tokens"].shape[0] % shards:
    raise SystemExit(f"--batch must be a multiple of the {shards} devices the batch is split over")
  scorer = scoring.jit_score_batch(lm.model, lm.mesh)
  sharding = partitioning.batch_sharding(lm.mesh)

  def run(batches):
    with partitioning.activation_rules(lm.mesh, lm.rules):
      start = time.perf_counter()
      scores = [scorer(lm.params, {k: jax.device_put(v, sharding) for k, v in b.items()})
                for b in batches]
      jax.block_until_ready(scores)
      seconds = time.perf_counter() - start
    return seconds, np.concatenate([np.asarray(s) for s in scores])

  compile_s, _ = run(batches[:1])
  return run, {"compile_s": compile_s, "stored_dtype": stored.dtype, "dtype": lm.config.dtype,
               "param_dtype": lm.config.param_dtype,
               "devices": f"{len(lm.mesh.devices.flat)} x {jax.devices()[0].device_kind}"}


def hf_scorer(snapshot: str, dtype: str, batches: list[dict], threads: int | None = None
              ) -> tuple[Callable, dict]:
  """The HF model (T5/MT5ForConditionalGeneration) of the same snapshot: logits -> log_softmax ->
  target log-probs -> sum over the weighted positions, per row. Warmed up on batches[0];
  returns run(batches) -> (seconds, scores) and facts about the set-up."""
  import torch
  import transformers

  device = "cuda" if torch.cuda.is_available() else "cpu"
  if device == "cpu":
    threads = threads or cpu_count()
    torch.set_num_threads(threads)
  else:
    threads = None
  torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
  model = transformers.AutoModelForSeq2SeqLM.from_pretrained(snapshot, dtype=torch.float32)
  model = model.to(device=device, dtype=torch_dtype).eval()

  def score(batch):
    as_long = lambda k: torch.as_tensor(batch[k], device=device).long()  # noqa: E731
    inputs = as_long("encoder_input_tokens")
    targets = as_long("decoder_target_tokens")
    weights = torch.as_tensor(batch["decoder_loss_weights"], device=device).float()
    logits = model(input_ids=inputs, attention_mask=(inputs > 0).long(),
                   decoder_input_ids=as_long("decoder_input_tokens")).logits
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return (log_probs.gather(-1, targets[..., None])[..., 0] * weights).sum(-1)

  def run(batches):
    with torch.inference_mode():
      start = time.perf_counter()
      scores = [score(b) for b in batches]
      if device == "cuda":
        torch.cuda.synchronize()
      seconds = time.perf_counter() - start
    return seconds, torch.cat(scores).float().cpu().numpy()

  run(batches[:1])  # warm-up (allocations, kernel selection)
  return run, {"dtype": str(torch_dtype).removeprefix("torch."),
               "device": device if device == "cpu" else torch.cuda.get_device_name(),
               "threads": threads, "transformers": transformers.__version__,
               "torch": torch.__version__,
               "attn_implementation": getattr(model.config, "_attn_implementation", None)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="small", choices=sorted(SIZES),
                      help="shape of the random model (small: mT5-small, reduced vocab)")
  parser.add_argument("--vocab_size", type=int, default=None,
                      help=f"random model's vocab (default {DEFAULT_VOCAB})")
  parser.add_argument("--hf_snapshot", default=None,
                      help="a local HF T5/mT5 snapshot directory instead of a random model")
  parser.add_argument("--batch", type=int, default=32, help="scored choices per batch")
  parser.add_argument("--input_length", type=int, default=256)
  parser.add_argument("--target_length", type=int, default=8)
  parser.add_argument("--steps", type=int, default=4, help="timed batches (distinct inputs)")
  parser.add_argument("--repeats", type=int, default=3,
                      help="timed passes per side, alternating; the best counts")
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                      help="compute dtype of both sides")
  parser.add_argument("--xlt_dtype", default=None, choices=["float32", "bfloat16"],
                      help="xlt's compute dtype if not --dtype (the parity check then only "
                      "reports)")
  parser.add_argument("--hf_threads", type=int, default=None,
                      help="torch.set_num_threads on the CPU (default: the CPU count)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--json", default=None, help="also write the numbers here")
  args = parser.parse_args()
  tpu_env.quiet_libtpu_off_tpu()  # before jax first looks for devices
  # On a GPU, torch shares the device: jax takes memory as needed, not 75% up front.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  xlt_dtype = args.xlt_dtype or args.dtype

  with tempfile.TemporaryDirectory(prefix="xlt_eval_throughput_") as tmp:
    snapshot = args.hf_snapshot
    if snapshot is None:
      snapshot = os.path.join(tmp, "hf")
      random_snapshot(snapshot, args.size, args.vocab_size or DEFAULT_VOCAB[args.size],
                      args.seed)
    with warnings.catch_warnings():  # a random snapshot has no spiece.model: not needed here
      warnings.filterwarnings("ignore", message=".*spiece.model.*")
      config = hf_t5.convert_hf_checkpoint(snapshot, os.path.join(tmp, "xlt"))
    batches = synthetic_batches(config.vocab_size, args.batch, args.input_length,
                                args.target_length, args.steps, args.seed)
    run_xlt, xlt = xlt_scorer(os.path.join(tmp, "xlt"), xlt_dtype, batches)
    run_hf, hf = hf_scorer(snapshot, args.dtype, batches, args.hf_threads)
    # Alternating passes over the same batches; each side's best pass counts (as timeit).
    xlt_passes, hf_passes = [], []
    for _ in range(args.repeats):
      seconds, xlt_scores = run_xlt(batches)
      xlt_passes.append(seconds)
      seconds, hf_scores = run_hf(batches)
      hf_passes.append(seconds)

  choices = args.batch * args.steps
  xlt_rate, hf_rate = choices / min(xlt_passes), choices / min(hf_passes)
  diff = float(np.max(np.abs(xlt_scores - hf_scores)))
  model_name = (args.hf_snapshot if args.hf_snapshot else
                f"random mT5-{args.size} (vocab {config.vocab_size})")
  result = {
      "device": xlt["devices"], "model": model_name, "size": args.size,
      "vocab_size": config.vocab_size, "batch": args.batch, "input_length": args.input_length,
      "target_length": args.target_length, "steps": args.steps,
      "mean_input_tokens": float(np.mean([(b["encoder_input_tokens"] > 0).sum(-1).mean()
                                          for b in batches])),
      "mean_target_tokens": float(np.mean([b["decoder_loss_weights"].sum(-1).mean()
                                           for b in batches])),
      "xlt_dtype": xlt["dtype"], "xlt_param_dtype": xlt["param_dtype"],
      "converted_checkpoint_dtype": xlt["stored_dtype"], "xlt_compile_s": xlt["compile_s"],
      "repeats": args.repeats, "xlt_pass_s": xlt_passes,
      "xlt_s_per_batch": min(xlt_passes) / args.steps, "xlt_choices_per_s": xlt_rate,
      "hf_dtype": hf["dtype"], "hf_device": hf["device"], "hf_threads": hf["threads"],
      "hf_attn_implementation": hf["attn_implementation"], "hf_transformers": hf["transformers"],
      "hf_torch": hf["torch"], "hf_pass_s": hf_passes,
      "hf_s_per_batch": min(hf_passes) / args.steps,
      "hf_choices_per_s": hf_rate, "xlt_over_hf": xlt_rate / hf_rate,
      "max_abs_score_diff": diff, "max_abs_score": float(np.max(np.abs(hf_scores))),
      "jax": jax.__version__,
  }
  threads = f" with {hf['threads']} threads" if hf["threads"] else ""
  print(f"{result['device']} (jax {jax.__version__}); HF on {hf['device']}{threads}; "
        f"{model_name}; batch {args.batch} choices, input {args.input_length} "
        f"(mean {result['mean_input_tokens']:.0f} real), target {args.target_length} "
        f"(mean {result['mean_target_tokens']:.1f} scored); best of {args.repeats} passes over "
        f"{args.steps} batches")
  print(f"dtypes: xlt compute {xlt['dtype']} (params {xlt['param_dtype']}; the converted "
        f"checkpoint stores {xlt['stored_dtype']}), HF {hf['dtype']} "
        f"({hf['attn_implementation']} attention)")
  print(f"xlt: {result['xlt_s_per_batch'] * 1e3:.1f} ms/batch, {xlt_rate:,.1f} choices/s "
        f"(compile + first batch {xlt['compile_s']:.1f} s, not timed)")
  print(f"HF transformers {hf['transformers']} (torch {hf['torch']}): "
        f"{result['hf_s_per_batch'] * 1e3:.1f} ms/batch, {hf_rate:,.1f} choices/s")
  print(f"xlt / HF = x{xlt_rate / hf_rate:.2f}; max |score diff| = {diff:.3g} "
        f"(max |score| {result['max_abs_score']:.3g})")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)
  if xlt_dtype == args.dtype == "float32":
    assert diff <= FLOAT32_TOLERANCE, (
        f"xlt and HF scores differ by {diff:.3g} > {FLOAT32_TOLERANCE}: not the same work")


if __name__ == "__main__":
  main()
