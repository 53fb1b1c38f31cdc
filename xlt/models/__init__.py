"""Models: the mT5 / T5.1.1 encoder-decoder and the LLaMA-family decoder-only LM.

A run's model is chosen by its config's type (gin: `MODEL = @T5Config()` or
`MODEL = @LlamaConfig()`); the rest of the code asks these helpers, not the type.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Union

import flax.linen as nn

from xlt.models.config import MT5_SIZES, TINY, T5Config
from xlt.models.llama import LLAMA_SIZES, LLAMA_TINY, Llama, LlamaConfig
from xlt.models.t5 import Transformer, init_params

ModelConfig = Union[T5Config, LlamaConfig]

__all__ = ["MT5_SIZES", "TINY", "T5Config", "Transformer", "init_params", "LLAMA_SIZES",
           "LLAMA_TINY", "Llama", "LlamaConfig", "ModelConfig", "build", "is_decoder_only",
           "config_from_dict", "layers_text"]


def is_decoder_only(config: ModelConfig) -> bool:
  return isinstance(config, LlamaConfig)


def layers_text(config: ModelConfig) -> str:
  """'32' for a decoder-only model, '24/24' (encoder/decoder) for T5: for log lines."""
  if is_decoder_only(config):
    return str(config.num_layers)
  return f"{config.num_encoder_layers}/{config.num_decoder_layers}"


def build(config: ModelConfig) -> nn.Module:
  """The Flax module of a config: Llama for LlamaConfig, Transformer (T5) otherwise."""
  return Llama(config) if is_decoder_only(config) else Transformer(config)


def config_from_dict(stored: dict[str, Any], where: str = "the checkpoint") -> ModelConfig:
  """The config a checkpoint's model_config item describes (its fields say which model)."""
  for cls in (T5Config, LlamaConfig):
    names = {f.name for f in dataclasses.fields(cls)}
    # Older checkpoints lack fields added since (the quant_* ones): their defaults apply.
    required = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("quant_")}
    if required <= set(stored) <= names:
      return cls(**stored)
  raise ValueError(f"{where}: model_config {sorted(stored)} is neither a T5Config nor a "
                   "LlamaConfig")
