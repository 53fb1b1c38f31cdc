"""Hugging Face T5 / mT5 snapshots -> xlt params, an orbax checkpoint and a gin model config.

A snapshot is a directory as `save_pretrained` or the hub writes it: config.json, the
weights (model.safetensors, sharded model-*.safetensors, or pytorch_model.bin) and
usually spiece.model. HF key -> xlt path (i: block, s: encoder/decoder):

  shared.weight                                          shared/embedding
  s.block.0.layer.0.SelfAttention.relative_attention_bias.weight   s/relpos_bias/rel_embedding
  s.block.i.layer.0.SelfAttention.{q,k,v,o}.weight       s/layers_i/{self_,}attention/...
  decoder.block.i.layer.1.EncDecAttention.{q,k,v,o}.weight   decoder/layers_i/cross_attention/...
  s.block.i.layer.{1,2}.DenseReluDense.{wi_0,wi_1,wi,wo}.weight   s/layers_i/mlp/...
  s.block.i.layer.j.layer_norm.weight                    s/layers_i/pre_*_norm/scale
  s.final_layer_norm.weight                              s/final_norm/scale
  lm_head.weight                                         decoder/lm_head/kernel (untied only)

torch is needed only for the legacy pytorch_model.bin format; safetensors are read here
directly, because safetensors' numpy loader cannot represent bfloat16.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import warnings
from typing import Any

import jax
import ml_dtypes
import numpy as np
from safetensors import safe_open

from xlt.convert import output
from xlt.models.config import T5Config
from xlt.models.t5 import init_params

# Keys an HF checkpoint may hold that carry nothing for xlt: per-stack copies of `shared`,
# and a cross-attention position bias old T5 checkpoints saved but no T5 uses (HF drops it).
IGNORED_HF_KEYS = frozenset({
    "encoder.embed_tokens.weight",
    "decoder.embed_tokens.weight",
    "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
})
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
_SHAPE_KEYS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_layers")

Params = dict[str, Any]


# ----------------------------------------------------------------------------- config


def _transformers_major(hf_config: dict) -> int:
  try:
    return int(str(hf_config.get("transformers_version", "0")).split(".")[0])
  except ValueError:
    return 0


def _scales_decoder_output(hf_config: dict) -> bool:
  """Whether HF multiplies the decoder output by d_model**-0.5 before the head.

  Original T5 does (with the head tied to the embedding); T5.1.1 and mT5 do not (untied
  head). xlt couples the two the same way, so this decides xlt's `tie_word_embeddings`.
  transformers < 5 scaled iff `tie_word_embeddings` (default True for T5, False for mT5).
  transformers >= 5 always saves `tie_word_embeddings: true` for both; it records T5's
  choice as `scale_decoder_outputs` and never scales mT5.
  """
  if "scale_decoder_outputs" in hf_config:
    return bool(hf_config["scale_decoder_outputs"])
  is_mt5 = hf_config.get("model_type") == "mt5"
  if is_mt5 and _transformers_major(hf_config) >= 5:
    return False
  tied = hf_config.get("tie_word_embeddings")
  return (not is_mt5) if tied is None else bool(tied)


def config_from_hf(hf_config: dict, *, source: str = "config.json", dtype: str | None = None,
                   param_dtype: str | None = None) -> T5Config:
  """T5Config for an HF T5/mT5 config.json dict; `source` names the file in errors."""
  model_type = hf_config.get("model_type", "t5")
  if model_type not in ("t5", "mt5"):
    raise ValueError(f"{source}: model_type {model_type!r} is not T5 or mT5; only those convert")
  missing = [k for k in _SHAPE_KEYS if hf_config.get(k) is None]
  if missing:
    raise ValueError(f"{source}: missing {', '.join(missing)}")
  # HF's own default differs by model: relu for T5, gated-gelu for mT5.
  ff = hf_config.get("feed_forward_proj", "gated-gelu" if model_type == "mt5" else "relu")
  if ff not in ("gated-gelu", "relu"):
    raise ValueError(f"{source}: feed_forward_proj {ff!r} is not supported; xlt implements "
                     "'gated-gelu' (mT5, T5.1.1) and 'relu' (original T5)")
  overrides = {k: v for k, v in (("dtype", dtype), ("param_dtype", param_dtype)) if v is not None}
  num_layers = int(hf_config["num_layers"])
  return T5Config(
      vocab_size=int(hf_config["vocab_size"]),
      d_model=int(hf_config["d_model"]),
      d_kv=int(hf_config["d_kv"]),
      d_ff=int(hf_config["d_ff"]),
      num_heads=int(hf_config["num_heads"]),
      num_encoder_layers=num_layers,
      num_decoder_layers=int(hf_config.get("num_decoder_layers") or num_layers),
      relative_attention_num_buckets=int(hf_config.get("relative_attention_num_buckets", 32)),
      relative_attention_max_distance=int(hf_config.get("relative_attention_max_distance", 128)),
      dropout_rate=float(hf_config.get("dropout_rate", 0.1)),
      layer_norm_epsilon=float(hf_config.get("layer_norm_epsilon", 1e-6)),
      feed_forward_proj=ff,
      tie_word_embeddings=_scales_decoder_output(hf_config),
      **overrides)


# ---------------------------------------------------------------------------- weights


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  """All tensors of one .safetensors file as numpy (bfloat16 via ml_dtypes)."""
  with safe_open(path, framework="np") as f:
    return {name: f.get_tensor(name) for name in f.keys()}


def _read_torch_bin(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(f"reading {path} needs torch (pip install torch); a snapshot with "
                      "model.safetensors converts without it") from e
  state_dict = torch.load(path, map_location="cpu", weights_only=True)
  tensors = {}
  for name, tensor in state_dict.items():
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the bits
      tensors[name] = tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    else:
      tensors[name] = tensor.numpy()
  return tensors


def _read_sharded(index_path: str, read_one) -> dict[str, np.ndarray]:
  with open(index_path) as f:
    weight_map = json.load(f)["weight_map"]  # HF key -> shard file name
  directory = os.path.dirname(index_path)
  tensors = {}
  for shard in sorted(set(weight_map.values())):
    tensors.update(read_one(os.path.join(directory, shard)))
  absent = sorted(set(weight_map) - set(tensors))
  if absent:
    raise ValueError(f"{index_path} lists tensors that are in none of its shards: {absent[:5]}")
  return tensors


def load_hf_state_dict(snapshot_dir: str) -> dict[str, np.ndarray]:
  """HF key -> array, in the checkpoint's own dtype, from whichever weight format is present."""
  snapshot_dir = os.fspath(snapshot_dir)
  candidates = [os.path.join(snapshot_dir, name) for name in WEIGHT_FILES]
  single_st, index_st, single_bin, index_bin = candidates
  if os.path.isfile(single_st):
    return _read_safetensors(single_st)
  if os.path.isfile(index_st):
    return _read_sharded(index_st, _read_safetensors)
  if os.path.isfile(single_bin):
    return _read_torch_bin(single_bin)
  if os.path.isfile(index_bin):
    return _read_sharded(index_bin, _read_torch_bin)
  raise FileNotFoundError(f"no Hugging Face weights in {snapshot_dir}: looked for "
                          f"{', '.join(WEIGHT_FILES)}")


# -------------------------------------------------------------------------- conversion


def _hf_key_map(config: T5Config) -> dict[str, tuple[tuple[str, ...], str]]:
  """HF key -> (xlt param path, transform), for everything except the output head."""
  mlp = ("wi_0", "wi_1", "wo") if config.feed_forward_proj == "gated-gelu" else ("wi", "wo")
  mapping = {"shared.weight": (("shared", "embedding"), "copy")}
  stacks = {
      # HF sub-layer index -> (HF attention name or None for the MLP, xlt module, xlt norm)
      "encoder": (config.num_encoder_layers,
                  [("SelfAttention", "attention", "pre_attention_norm"),
                   (None, "mlp", "pre_mlp_norm")]),
      "decoder": (config.num_decoder_layers,
                  [("SelfAttention", "self_attention", "pre_self_attention_norm"),
                   ("EncDecAttention", "cross_attention", "pre_cross_attention_norm"),
                   (None, "mlp", "pre_mlp_norm")]),
  }
  for stack, (num_layers, sublayers) in stacks.items():
    mapping[f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = (
        (stack, "relpos_bias", "rel_embedding"), "copy")
    mapping[f"{stack}.final_layer_norm.weight"] = ((stack, "final_norm", "scale"), "copy")
    for i in range(num_layers):
      for j, (attention, module, norm) in enumerate(sublayers):
        hf = f"{stack}.block.{i}.layer.{j}"
        xlt = (stack, f"layers_{i}")
        mapping[f"{hf}.layer_norm.weight"] = (xlt + (norm, "scale"), "copy")
        if attention is None:
          for name in mlp:
            mapping[f"{hf}.DenseReluDense.{name}.weight"] = (xlt + (module, name, "kernel"),
                                                             "dense")
        else:
          for hf_name, name in (("q", "query"), ("k", "key"), ("v", "value")):
            mapping[f"{hf}.{attention}.{hf_name}.weight"] = (xlt + (module, name, "kernel"), "qkv")
          mapping[f"{hf}.{attention}.o.weight"] = (xlt + (module, "out", "kernel"), "out")
  return mapping


def _hf_shape(kind: str, xlt_shape: tuple[int, ...]) -> tuple[int, ...]:
  """The HF tensor shape that becomes `xlt_shape` under transform `kind`."""
  if kind == "copy":
    return xlt_shape
  if kind == "dense":
    return xlt_shape[::-1]  # torch Linear: [out, in]
  if kind == "qkv":
    d, h, e = xlt_shape
    return (h * e, d)
  d = xlt_shape[-1]  # "out": [heads, kv, embed]
  return (d, xlt_shape[0] * xlt_shape[1])


def _transform(kind: str, weight: np.ndarray, xlt_shape: tuple[int, ...]) -> np.ndarray:
  weight = np.asarray(weight, np.float32)
  if kind == "copy":
    out = weight
  elif kind == "dense":
    out = weight.T  # [out, in] -> [in, out]
  else:
    # HF's inner dim is head-major (h*e): qkv [h*e, d] -> [d, h, e]; out [d, h*e] -> [h, e, d].
    out = weight.T.reshape(xlt_shape)
  return np.ascontiguousarray(out)


def expected_param_shapes(config: T5Config) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Path -> shape of every parameter of xlt.models.Transformer(config) (nothing allocated)."""
  abstract = jax.eval_shape(functools.partial(init_params, config), jax.random.key(0))
  leaves = jax.tree_util.tree_leaves_with_path(abstract, is_leaf=lambda x: hasattr(x, "unbox"))
  shapes = {}
  for path, leaf in leaves:
    leaf = leaf.unbox() if hasattr(leaf, "unbox") else leaf
    shapes[tuple(k.key for k in path)] = tuple(leaf.shape)
  return shapes


def _set(tree: Params, path: tuple[str, ...], value: np.ndarray) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _list(keys: list[str], limit: int = 8) -> str:
  more = f" ... ({len(keys) - limit} more)" if len(keys) > limit else ""
  return ", ".join(keys[:limit]) + more


def convert_state_dict(state_dict: dict[str, Any], config: T5Config) -> Params:
  """HF T5/mT5 state dict -> xlt param tree (nested dicts of float32 numpy arrays).

  Fails naming the HF keys that are missing or unexpected and any tensor whose shape does
  not fit `config`, so a mismatched config.json cannot give a silently wrong model.
  """
  mapping = _hf_key_map(config)
  expected = expected_param_shapes(config)
  head_path = ("decoder", "lm_head", "kernel")
  mapped_paths = {path for path, _ in mapping.values()}
  if not config.tie_word_embeddings:
    mapped_paths.add(head_path)
  if mapped_paths != set(expected):  # the model's tree changed under this converter
    raise RuntimeError("xlt.models.Transformer's parameter tree no longer matches the HF "
                       f"mapping: model-only {sorted(set(expected) - mapped_paths)[:5]}, "
                       f"mapping-only {sorted(mapped_paths - set(expected))[:5]}")
  present = set(state_dict)
  missing = sorted(set(mapping) - present)
  unexpected = sorted(present - set(mapping) - IGNORED_HF_KEYS - {"lm_head.weight"})
  if missing or unexpected:
    problems = []
    if missing:
      problems.append(f"missing HF keys: {_list(missing)}")
    if unexpected:
      problems.append(f"unexpected HF keys: {_list(unexpected)}")
    raise ValueError(f"checkpoint does not match a {config.num_encoder_layers}+"
                     f"{config.num_decoder_layers}-layer {config.feed_forward_proj} T5: "
                     + "; ".join(problems))

  params: Params = {}
  for key, (path, kind) in mapping.items():
    weight = state_dict[key]
    want = _hf_shape(kind, expected[path])
    if tuple(weight.shape) != want:
      raise ValueError(f"HF tensor {key} has shape {tuple(weight.shape)}, but the config "
                       f"needs {want}")
    _set(params, path, _transform(kind, weight, expected[path]))

  shared = params["shared"]["embedding"]  # [vocab, d]
  head = state_dict.get("lm_head.weight")  # [vocab, d] like shared
  if head is not None and tuple(head.shape) != shared.shape:
    raise ValueError(f"HF tensor lm_head.weight has shape {tuple(head.shape)}, but the config "
                     f"needs {shared.shape}")
  if config.tie_word_embeddings:
    # The head is the embedding; a different lm_head.weight would be silently dropped.
    if head is not None and not np.array_equal(np.asarray(head, np.float32), shared):
      raise ValueError("the config ties the output head to shared.weight (original T5, "
                       "decoder output scaled by d_model**-0.5), but lm_head.weight differs "
                       "from shared.weight; xlt cannot represent a scaled untied head")
  else:
    # transformers >= 5 saves mT5 with the head tied to `shared` and omits lm_head.weight.
    source = shared if head is None else np.asarray(head, np.float32)
    _set(params, head_path, np.ascontiguousarray(source.T))  # [d, vocab]
  return params


# ------------------------------------------------------------------------- checkpoint


def gin_bindings(config: T5Config, header: str = "") -> str:
  """`T5Config.<field> = <value>` lines, one per field, for an experiment to include."""
  lines = [f"# {line}" for line in header.splitlines()]
  for field in dataclasses.fields(T5Config):
    lines.append(f"T5Config.{field.name} = {getattr(config, field.name)!r}")
  return "\n".join(lines) + "\n"


def convert_hf_checkpoint(snapshot_dir: str, out_dir: str, *, dtype: str | None = None,
                          param_dtype: str | None = None) -> T5Config:
  """Converts an HF T5/mT5 snapshot into an xlt checkpoint directory.

  Writes out_dir/0 (orbax items `params` and `model_config`: what the trainer restores
  from INITIAL_CHECKPOINT_PATH), out_dir/spiece.model and out_dir/model.gin. Refuses an
  out_dir that already holds any of these rather than overwrite it.
  """
  snapshot_dir = os.path.abspath(os.path.expanduser(os.fspath(snapshot_dir)))
  out_dir = os.path.abspath(os.path.expanduser(os.fspath(out_dir)))
  output.refuse_existing(out_dir)
  config_path, hf_config = output.read_config_json(snapshot_dir, "T5/mT5")
  config = config_from_hf(hf_config, source=config_path, dtype=dtype, param_dtype=param_dtype)
  # Everything is read and converted before anything is written.
  params = convert_state_dict(load_hf_state_dict(snapshot_dir), config)
  if config.weights_dtype != np.float32:
    params = jax.tree.map(lambda x: x.astype(config.weights_dtype), params)

  gin_path = output.write_checkpoint(
      out_dir, params, config.to_dict(),
      gin_bindings(config, f"Model config of the xlt checkpoint converted from\n"
                           f"{snapshot_dir}; include it from an experiment's gin file."))
  spiece = os.path.join(snapshot_dir, "spiece.model")
  if os.path.isfile(spiece):
    shutil.copyfile(spiece, os.path.join(out_dir, "spiece.model"))
    print(f"copied the sentencepiece vocabulary {spiece} -> {out_dir}/spiece.model")
  else:
    warnings.warn(f"{snapshot_dir} has no spiece.model: supply the model's sentencepiece "
                  "vocabulary yourself", stacklevel=2)
  count = sum(x.size for x in jax.tree.leaves(params))
  print(f"converted {count:,} parameters ({count / 1e6:.1f}M, {config.param_dtype}) "
        f"-> {out_dir} (orbax step 0, items params and model_config; gin: {gin_path})")
  return config
