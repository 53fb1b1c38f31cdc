"""A BERT sentence encoder in plain JAX, with Hugging Face parameter names.

Params are a flat dict keyed exactly as a Hugging Face `BertModel` state dict
("encoder.layer.0.attention.self.query.weight", ...), so a sentence-transformers snapshot
loads and saves without a name map. Linear weights keep torch's [out, in] layout.
`encode` is BertModel's forward without dropout (post-LN, token type 0), then mean pooling
over real tokens and L2 normalisation, as sentence-transformers' Pooling(mean) + Normalize.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

WEIGHTS_FILE = "model.safetensors"
_IGNORED_PREFIXES = ("pooler.",)
_IGNORED_KEYS = ("embeddings.position_ids",)


@dataclasses.dataclass(frozen=True)
class BertConfig:
  vocab_size: int
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  pad_token_id: int = 0

  @classmethod
  def from_json(cls, path: str | os.PathLike) -> "BertConfig":
    """A BERT config.json; other architectures are refused with the file named."""
    path = pathlib.Path(path)
    try:
      data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
      raise FileNotFoundError(f"{path}: no config.json (not a model snapshot)") from None
    except (OSError, json.JSONDecodeError) as e:
      raise ValueError(f"{path}: unreadable config ({e})") from None
    if data.get("model_type") != "bert":
      raise ValueError(f"{path}: model_type {data.get('model_type')!r}; the INSTA encoder "
                       "implements the BERT family only (model_type 'bert')")
    if data.get("position_embedding_type", "absolute") != "absolute":
      raise ValueError(f"{path}: position_embedding_type "
                       f"{data['position_embedding_type']!r}; only 'absolute' is supported")
    if data.get("hidden_act", "gelu") not in _ACTIVATIONS:
      raise ValueError(f"{path}: hidden_act {data['hidden_act']!r}; supported: "
                       f"{sorted(_ACTIVATIONS)}")
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names[:5] if n not in data]
    if missing:
      raise ValueError(f"{path}: missing {missing}")
    return cls(**{n: data[n] for n in names if data.get(n) is not None})


_ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}


def expected_keys(config: BertConfig) -> list[str]:
  keys = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
          "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
          "embeddings.LayerNorm.bias"]
  for i in range(config.num_hidden_layers):
    p = f"encoder.layer.{i}."
    for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                 "attention.output.dense", "intermediate.dense", "output.dense",
                 "attention.output.LayerNorm", "output.LayerNorm"):
      keys += [p + name + ".weight", p + name + ".bias"]
  return keys


def load_params(folder: str | os.PathLike, config: BertConfig) -> dict[str, jnp.ndarray]:
  """model.safetensors of a snapshot as float32; a 'bert.' prefix is accepted."""
  from safetensors.numpy import load_file
  path = pathlib.Path(folder) / WEIGHTS_FILE
  if not path.is_file():
    raise FileNotFoundError(f"{path}: missing (the encoder reads safetensors weights)")
  raw = load_file(str(path))
  params = {}
  for key, value in raw.items():
    key = key.removeprefix("bert.")
    if key.startswith(_IGNORED_PREFIXES) or key in _IGNORED_KEYS:
      continue
    params[key] = jnp.asarray(value, jnp.float32)
  missing = [k for k in expected_keys(config) if k not in params]
  if missing:
    raise ValueError(f"{path}: {len(missing)} BERT weights missing, e.g. {missing[:3]}")
  return {k: params[k] for k in expected_keys(config)}


def save_params(params: dict, folder: str | os.PathLike) -> pathlib.Path:
  from safetensors.numpy import save_file
  path = pathlib.Path(folder) / WEIGHTS_FILE
  save_file({k: np.asarray(v, np.float32) for k, v in params.items()}, str(path),
            metadata={"format": "pt"})
  return path


def _dense(params: dict, name: str, x: jnp.ndarray) -> jnp.ndarray:
  return x @ params[name + ".weight"].T + params[name + ".bias"]


def _layer_norm(params: dict, name: str, x: jnp.ndarray, eps: float) -> jnp.ndarray:
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps) * params[name + ".weight"] + params[name + ".bias"]


def hidden_states(params: dict, config: BertConfig, input_ids: jnp.ndarray,
                  attention_mask: jnp.ndarray) -> jnp.ndarray:
  """[B, L] ids and mask -> [B, L, H] last hidden states (BertModel, no dropout)."""
  batch, length = input_ids.shape
  eps, heads = config.layer_norm_eps, config.num_attention_heads
  head_dim = config.hidden_size // heads
  act = _ACTIVATIONS[config.hidden_act]
  x = (params["embeddings.word_embeddings.weight"][input_ids]
       + params["embeddings.position_embeddings.weight"][jnp.arange(length)][None]
       + params["embeddings.token_type_embeddings.weight"][0][None, None])  # [B, L, H]
  x = _layer_norm(params, "embeddings.LayerNorm", x, eps)
  # Padded keys get the dtype's minimum, as Hugging Face's extended attention mask.
  bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0,
                   jnp.finfo(jnp.float32).min)  # [B, 1, 1, L]

  def split(t):  # [B, L, H] -> [B, heads, L, head_dim]
    return t.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

  for i in range(config.num_hidden_layers):
    p = f"encoder.layer.{i}."
    q = split(_dense(params, p + "attention.self.query", x))
    k = split(_dense(params, p + "attention.self.key", x))
    v = split(_dense(params, p + "attention.self.value", x))
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + bias  # [B, heads, L, L]
    context = jax.nn.softmax(logits, axis=-1) @ v                     # [B, heads, L, d]
    context = context.transpose(0, 2, 1, 3).reshape(batch, length, config.hidden_size)
    x = _layer_norm(params, p + "attention.output.LayerNorm",
                    _dense(params, p + "attention.output.dense", context) + x, eps)
    inner = act(_dense(params, p + "intermediate.dense", x))          # [B, L, I]
    x = _layer_norm(params, p + "output.LayerNorm",
                    _dense(params, p + "output.dense", inner) + x, eps)
  return x


def encode(params: dict, config: BertConfig, input_ids: jnp.ndarray,
           attention_mask: jnp.ndarray) -> jnp.ndarray:
  """[B, L] -> [B, H] float32: mean over real tokens, then unit length."""
  states = hidden_states(params, config, input_ids, attention_mask)
  mask = attention_mask.astype(jnp.float32)[..., None]               # [B, L, 1]
  pooled = (states * mask).sum(1) / jnp.maximum(mask.sum(1), 1e-9)   # [B, H]
  norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
  return pooled / jnp.maximum(norm, 1e-12)
