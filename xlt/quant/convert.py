"""`xlt quantize CKPT OUT`: a float xlt checkpoint -> a PEQA-ready quantized one.

OUT is laid out like `xlt convert hf` output (orbax step 0 with `params` and
`model_config`, model.gin, spiece.model when CKPT has one), so it serves as
INITIAL_CHECKPOINT_PATH, or for `xlt eval` / `xlt infer` directly.
"""
from __future__ import annotations

import os
import shutil

import flax.linen as nn
import jax

from xlt import models, partitioning, run_paths
from xlt.convert import hf_llama, hf_t5, output
from xlt.quant import rtn
from xlt.quant.tree import quantize_like


def quantize_checkpoint(checkpoint_path: str, out_dir: str, *, bits: int, group_size: int,
                        pattern: str = ".*") -> dict[str, int]:
  """Writes OUT; returns {"float_bytes", "bfloat16_bytes", "quantized_bytes"}."""
  from xlt.loaded_model import load_model
  from xlt.train_state import boxed_params

  out_dir = os.path.abspath(os.path.expanduser(out_dir))
  output.refuse_existing(out_dir)
  loaded = load_model(checkpoint_path)
  if loaded.config.quant_bits:
    raise ValueError(f"{checkpoint_path} is already quantized ({loaded.config.quant_bits} bits); "
                     "quantize the float checkpoint it came from")
  config = loaded.config.replace(quant_bits=bits, quant_group_size=group_size,
                                 quant_pattern=pattern)
  boxed = jax.eval_shape(lambda r: boxed_params(config, r), jax.random.key(0))
  shardings = partitioning.shardings_from_logical(boxed, loaded.mesh, loaded.rules)
  params = jax.jit(lambda f: quantize_like(f, nn.meta.unbox(boxed), config),
                   out_shardings=shardings)(loaded.params)
  sizes = {"float_bytes": rtn.nbytes(loaded.params),
           "bfloat16_bytes": sum(x.size * 2 for x in jax.tree.leaves(loaded.params)),
           "quantized_bytes": rtn.nbytes(params)}

  bindings = hf_llama.gin_bindings if models.is_decoder_only(config) else hf_t5.gin_bindings
  output.write_checkpoint(out_dir, params, config.to_dict(), bindings(
      config, f"Model config of {out_dir}, quantized by `xlt quantize` from\n"
              f"{checkpoint_path} (step {loaded.step})."))
  root = run_paths.resolve(checkpoint_path)
  for name in ("spiece.model",) + hf_llama.TOKENIZER_FILES:  # the vocabulary travels along
    if (root / name).is_file():
      shutil.copyfile(str(root / name), os.path.join(out_dir, name))
  group = f"group {group_size}" if group_size else "per output channel"
  print(f"quantized {checkpoint_path} (step {loaded.step}) to {bits} bits, {group}, pattern "
        f"{pattern!r} -> {out_dir}\n"
        f"parameter bytes: {sizes['float_bytes'] / 2**20:,.1f} MiB as stored "
        f"({loaded.config.param_dtype}), {sizes['bfloat16_bytes'] / 2**20:,.1f} MiB in bfloat16 "
        f"-> {sizes['quantized_bytes'] / 2**20:,.1f} MiB quantized "
        f"({sizes['quantized_bytes'] / sizes['bfloat16_bytes']:.1%} of bfloat16)")
  return sizes
