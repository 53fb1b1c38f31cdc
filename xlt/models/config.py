"""mT5 / T5.1.1 hyper-parameters, as one frozen dataclass."""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax.numpy as jnp


REMAT_POLICIES = ("none", "full", "dots_saveable")


class ModelConfigBase:
  """What every model config (T5Config, LlamaConfig) shares: dtypes, the PEQA quant_*
  fields (docs/peqa.md), the remat policy, and how they are checked and read."""

  def check_common(self) -> None:
    name = type(self).__name__
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f"{name}.remat_policy must be one of {REMAT_POLICIES}, "
                       f"got {self.remat_policy!r}")
    check_quantization(self)
    for field in ("dtype", "param_dtype"):
      value = getattr(self, field)
      try:
        jnp.dtype(value)
      except TypeError as e:
        raise ValueError(f"{name}.{field}={value!r} is not a dtype name") from e

  def quantizes(self, module_path: str) -> bool:
    """Whether the weight of the module at `module_path` ('a/b/c') is stored quantized."""
    return self.quant_bits > 0 and re.fullmatch(self.quant_pattern, module_path) is not None

  @property
  def compute_dtype(self) -> Any:
    return jnp.dtype(self.dtype)

  @property
  def weights_dtype(self) -> Any:
    return jnp.dtype(self.param_dtype)

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class T5Config(ModelConfigBase):
  """Shape and numerics of an encoder-decoder T5 model.

  Defaults are mT5-small. `dtype` is the compute dtype (activations, matmuls);
  `param_dtype` is what parameters and optimizer state are stored in.
  """

  vocab_size: int = 250112
  d_model: int = 512
  d_kv: int = 64
  d_ff: int = 1024
  num_heads: int = 6
  num_encoder_layers: int = 8
  num_decoder_layers: int = 8
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dropout_rate: float = 0.1
  layer_norm_epsilon: float = 1e-6
  # "gated-gelu" (T5.1.1, mT5) or "relu" (original T5).
  feed_forward_proj: str = "gated-gelu"
  # mT5 / T5.1.1 have an untied output head; the original T5 ties it to the embedding.
  tie_word_embeddings: bool = False
  dtype: str = "bfloat16"
  param_dtype: str = "float32"
  # Activation rematerialisation per layer: "none" (keep activations), "full" (recompute
  # the layer in the backward pass), "dots_saveable" (keep only matmul outputs).
  remat_policy: str = "none"
  # Run each stack's layers as one jax.lax.scan over parameters stacked on a leading
  # "layers" axis: one layer is compiled instead of num_layers (compile time and program
  # size drop); the numbers are the same. Checkpoints convert between the two layouts
  # on restore (xlt.models.scan_layout).
  scan_layers: bool = False
  # PEQA (docs/peqa.md): weights quantized to quant_bits (0: not quantized; 2, 3, 4 or 8)
  # by round-to-nearest, in groups of quant_group_size input rows (0: per output channel).
  # quant_pattern is a regex matched (fullmatch) against each weight's module path, e.g.
  # 'encoder/layers_0/mlp/wi_0' or 'shared' (the embedding); the default quantizes all.
  quant_bits: int = 0
  quant_group_size: int = 128
  quant_pattern: str = ".*"

  def __post_init__(self):
    if self.feed_forward_proj not in ("gated-gelu", "relu"):
      raise ValueError(
          f"T5Config.feed_forward_proj must be 'gated-gelu' or 'relu', got {self.feed_forward_proj!r}")
    self.check_common()


def check_quantization(config) -> None:
  """The quant_* fields of a model config (T5Config, LlamaConfig), with the binding named."""
  name = type(config).__name__
  if config.quant_bits not in (0, 2, 3, 4, 8):
    raise ValueError(f"{name}.quant_bits must be 0 (off), 2, 3, 4 or 8, got {config.quant_bits!r}")
  if config.quant_group_size not in (0, 32, 64, 128, 256):
    raise ValueError(f"{name}.quant_group_size must be 0 (per output channel), 32, 64, 128 "
                     f"or 256, got {config.quant_group_size!r}")
  try:
    re.compile(config.quant_pattern)
  except re.error as e:
    raise ValueError(f"{name}.quant_pattern={config.quant_pattern!r} is not a regex: {e}") from None


# Published mT5 dimensions (Xue et al. 2021; the released gin/HF configs).
MT5_SIZES: dict[str, T5Config] = {
    "small": T5Config(d_model=512, d_ff=1024, num_heads=6, num_encoder_layers=8,
                      num_decoder_layers=8),
    "base": T5Config(d_model=768, d_ff=2048, num_heads=12, num_encoder_layers=12,
                     num_decoder_layers=12),
    "large": T5Config(d_model=1024, d_ff=2816, num_heads=16, num_encoder_layers=24,
                      num_decoder_layers=24),
    "xl": T5Config(d_model=2048, d_ff=5120, num_heads=32, num_encoder_layers=24,
                   num_decoder_layers=24),
    "xxl": T5Config(d_model=4096, d_ff=10240, num_heads=64, num_encoder_layers=24,
                    num_decoder_layers=24),
}

# A model small enough for unit tests and the CPU demo.
TINY = T5Config(vocab_size=384, d_model=64, d_kv=16, d_ff=128, num_heads=4,
                num_encoder_layers=2, num_decoder_layers=2,
                relative_attention_num_buckets=32, relative_attention_max_distance=128,
                dropout_rate=0.0, dtype="float32")
