"""Hugging Face LlamaForCausalLM snapshots -> xlt params, an orbax checkpoint and model.gin.

HF key -> xlt path (i: layer); torch Linear weights are [out, in], xlt kernels [in, out]:

  model.embed_tokens.weight                          embed/embedding
  model.layers.i.self_attn.{q,k,v}_proj.weight       layers_i/attention/{query,key,value}/kernel
  model.layers.i.self_attn.o_proj.weight             layers_i/attention/out/kernel
  model.layers.i.mlp.{gate,up,down}_proj.weight      layers_i/mlp/{wi_0,wi_1,wo}/kernel
  model.layers.i.input_layernorm.weight              layers_i/pre_attention_norm/scale
  model.layers.i.post_attention_layernorm.weight     layers_i/pre_mlp_norm/scale
  model.norm.weight                                  final_norm/scale
  lm_head.weight                                     lm_head/kernel (absent when tied)

HF's rotary layout (rotate_half) is xlt's, so q/k need no permutation. The weight files
are read by xlt.convert.hf_t5's reader (safetensors, sharded, or pytorch_model.bin).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil
import warnings
from typing import Any

import jax
import numpy as np

from xlt.convert import output
from xlt.convert.hf_t5 import (_hf_shape, _list, _set, _transform,
                               load_hf_state_dict)
from xlt.models.llama import LlamaConfig, init_params

Params = dict[str, Any]
_SHAPE_KEYS = ("vocab_size", "hidden_size", "num_attention_heads", "intermediate_size",
               "num_hidden_layers")
# Old conversions saved the rotary inverse frequencies as a buffer; xlt recomputes them.
_IGNORED = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json")


# ----------------------------------------------------------------------------- config


def _rope_theta(hf_config: dict, source: str) -> float:
  """rope_theta from either layout: transformers < 5 (rope_theta, rope_scaling) or >= 5
  (rope_parameters: {rope_type, rope_theta, ...}). Only unscaled RoPE is implemented."""
  if hf_config.get("rope_scaling") is not None:
    raise ValueError(f"{source}: rope_scaling={hf_config['rope_scaling']!r} is not implemented "
                     "(xlt has plain RoPE only); it must be null")
  params = hf_config.get("rope_parameters") or {}
  rope_type = params.get("rope_type", params.get("type", "default"))
  if rope_type != "default":
    raise ValueError(f"{source}: rope_parameters rope_type {rope_type!r} is not implemented "
                     "(xlt has plain RoPE only, rope_type 'default')")
  return float(params.get("rope_theta", hf_config.get("rope_theta", 10000.0)))


def config_from_hf(hf_config: dict, *, source: str = "config.json", dtype: str | None = None,
                   param_dtype: str | None = None) -> LlamaConfig:
  """LlamaConfig for an HF LLaMA config.json dict; `source` names the file in errors."""
  model_type = hf_config.get("model_type")
  if model_type != "llama":
    raise ValueError(f"{source}: model_type {model_type!r} is not 'llama'; only LLaMA "
                     "(LlamaForCausalLM) snapshots convert with this converter")
  missing = [k for k in _SHAPE_KEYS if hf_config.get(k) is None]
  if missing:
    raise ValueError(f"{source}: missing {', '.join(missing)}")
  act = hf_config.get("hidden_act", "silu")
  if act != "silu":
    raise ValueError(f"{source}: hidden_act {act!r} is not supported; xlt's LLaMA MLP is SwiGLU "
                     "(silu)")
  for flag in ("attention_bias", "mlp_bias"):
    if hf_config.get(flag):
      raise ValueError(f"{source}: {flag} is true; xlt's LLaMA has no biases")
  heads = int(hf_config["num_attention_heads"])
  hidden = int(hf_config["hidden_size"])
  overrides = {k: v for k, v in (("dtype", dtype), ("param_dtype", param_dtype)) if v is not None}
  return LlamaConfig(
      vocab_size=int(hf_config["vocab_size"]),
      d_model=hidden,
      num_heads=heads,
      num_kv_heads=int(hf_config.get("num_key_value_heads") or heads),
      head_dim=int(hf_config.get("head_dim") or hidden // heads),
      d_ff=int(hf_config["intermediate_size"]),
      num_layers=int(hf_config["num_hidden_layers"]),
      rms_norm_eps=float(hf_config.get("rms_norm_eps", 1e-6)),
      rope_theta=_rope_theta(hf_config, source),
      max_position_embeddings=int(hf_config.get("max_position_embeddings", 2048)),
      tie_word_embeddings=bool(hf_config.get("tie_word_embeddings", False)),
      **overrides)


# ---------------------------------------------------------------------------- weights


def _hf_key_map(config: LlamaConfig) -> dict[str, tuple[tuple[str, ...], str]]:
  """HF key -> (xlt param path, hf_t5 transform kind)."""
  mapping = {"model.embed_tokens.weight": (("embed", "embedding"), "copy"),
             "model.norm.weight": (("final_norm", "scale"), "copy")}
  if not config.tie_word_embeddings:
    mapping["lm_head.weight"] = (("lm_head", "kernel"), "dense")
  for i in range(config.num_layers):
    hf, xlt = f"model.layers.{i}", (f"layers_{i}",)
    for name, module in (("q", "query"), ("k", "key"), ("v", "value")):
      mapping[f"{hf}.self_attn.{name}_proj.weight"] = (xlt + ("attention", module, "kernel"), "qkv")
    mapping[f"{hf}.self_attn.o_proj.weight"] = (xlt + ("attention", "out", "kernel"), "out")
    for name, module in (("gate", "wi_0"), ("up", "wi_1"), ("down", "wo")):
      mapping[f"{hf}.mlp.{name}_proj.weight"] = (xlt + ("mlp", module, "kernel"), "dense")
    mapping[f"{hf}.input_layernorm.weight"] = (xlt + ("pre_attention_norm", "scale"), "copy")
    mapping[f"{hf}.post_attention_layernorm.weight"] = (xlt + ("pre_mlp_norm", "scale"), "copy")
  return mapping


def expected_param_shapes(config: LlamaConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Path -> shape of every parameter of Llama(config) (nothing allocated)."""
  abstract = jax.eval_shape(functools.partial(init_params, config), jax.random.key(0))
  return {tuple(k.key for k in path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_leaves_with_path(abstract)}


def params_from_hf(tensors: dict[str, Any], config: LlamaConfig) -> Params:
  """HF LLaMA state dict -> xlt param tree (nested dicts of float32 numpy arrays).

  Fails naming missing or unexpected HF keys and any tensor whose shape does not fit
  `config`, so a mismatched config.json cannot give a silently wrong model.
  """
  mapping = _hf_key_map(config)
  expected = expected_param_shapes(config)
  mapped = {path for path, _ in mapping.values()}
  if mapped != set(expected):  # the model's tree changed under this converter
    raise RuntimeError("xlt.models.llama.Llama's parameter tree no longer matches the HF "
                       f"mapping: model-only {sorted(set(expected) - mapped)[:5]}, "
                       f"mapping-only {sorted(mapped - set(expected))[:5]}")
  present = set(tensors)
  missing = sorted(set(mapping) - present)
  unexpected = sorted(k for k in present - set(mapping)
                      if not _IGNORED.fullmatch(k) and k != "lm_head.weight")
  if missing or unexpected:
    problems = [f"missing HF keys: {_list(missing)}"] if missing else []
    if unexpected:
      problems.append(f"unexpected HF keys: {_list(unexpected)}")
    raise ValueError(f"checkpoint does not match a {config.num_layers}-layer LLaMA: "
                     + "; ".join(problems))

  params: Params = {}
  for key, (path, kind) in mapping.items():
    weight = tensors[key]
    want = _hf_shape(kind, expected[path])
    if tuple(weight.shape) != want:
      raise ValueError(f"HF tensor {key} has shape {tuple(weight.shape)}, but the config "
                       f"needs {want}")
    _set(params, path, _transform(kind, weight, expected[path]))

  head = tensors.get("lm_head.weight")
  if config.tie_word_embeddings and head is not None:
    # A tied config with a different head would silently drop it.
    if not np.array_equal(np.asarray(head, np.float32), params["embed"]["embedding"]):
      raise ValueError("config.json ties the output head (tie_word_embeddings true), but "
                       "lm_head.weight differs from model.embed_tokens.weight")
  return params


# ------------------------------------------------------------------------- checkpoint


def is_llama_snapshot(snapshot_dir: str) -> bool:
  """Whether snapshot_dir/config.json says model_type "llama" (for `xlt convert hf`)."""
  try:
    with open(os.path.join(os.fspath(snapshot_dir), "config.json")) as f:
      return json.load(f).get("model_type") == "llama"
  except (OSError, ValueError, AttributeError):
    return False


def gin_bindings(config: LlamaConfig, header: str = "") -> str:
  """`LlamaConfig.<field> = <value>` lines, one per field, for an experiment to include."""
  lines = [f"# {line}" for line in header.splitlines()]
  lines.append("MODEL = @LlamaConfig()  # an experiment including this file trains LLaMA")
  lines += [f"LlamaConfig.{f.name} = {getattr(config, f.name)!r}"
            for f in dataclasses.fields(LlamaConfig)]
  return "\n".join(lines) + "\n"


def convert_hf_checkpoint(snapshot_dir: str, out_dir: str, *, dtype: str | None = None,
                          param_dtype: str | None = None) -> LlamaConfig:
  """Converts an HF LLaMA snapshot into an xlt checkpoint directory.

  Writes out_dir/0 (orbax items `params` and `model_config`, as hf_t5 does), out_dir/
  model.gin and copies of the tokenizer files present. Refuses an out_dir that already
  holds any of these rather than overwrite it.
  """
  snapshot_dir = os.path.abspath(os.path.expanduser(os.fspath(snapshot_dir)))
  out_dir = os.path.abspath(os.path.expanduser(os.fspath(out_dir)))
  output.refuse_existing(out_dir, also=TOKENIZER_FILES)
  config_path, hf_config = output.read_config_json(snapshot_dir, "LLaMA")
  config = config_from_hf(hf_config, source=config_path, dtype=dtype, param_dtype=param_dtype)
  # Everything is read and converted before anything is written.
  params = params_from_hf(load_hf_state_dict(snapshot_dir), config)
  if config.weights_dtype != np.float32:
    params = jax.tree.map(lambda x: x.astype(config.weights_dtype), params)

  gin_path = output.write_checkpoint(
      out_dir, params, config.to_dict(),
      gin_bindings(config, f"Model config of the xlt LLaMA checkpoint converted from\n"
                           f"{snapshot_dir}; include it from an experiment's gin file."))
  copied = [n for n in TOKENIZER_FILES if os.path.isfile(os.path.join(snapshot_dir, n))]
  for name in copied:
    shutil.copyfile(os.path.join(snapshot_dir, name), os.path.join(out_dir, name))
  if copied:
    print(f"copied the tokenizer files {', '.join(copied)} -> {out_dir}")
  else:
    warnings.warn(f"{snapshot_dir} has no tokenizer files ({', '.join(TOKENIZER_FILES)}): "
                  "supply the model's tokenizer yourself", stacklevel=2)
  count = sum(x.size for x in jax.tree.leaves(params))
  print(f"converted {count:,} parameters ({count / 1e6:.1f}M, {config.param_dtype}) "
        f"-> {out_dir} (orbax step 0, items params and model_config; gin: {gin_path})")
  return config
