"""A trained model ready for eval/infer: config, parameters on the mesh, the mesh."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

import flax.linen as nn
import jax
from jax.sharding import Mesh

from xlt import checkpoints, partitioning
from xlt import models
from xlt.models import ModelConfig
from xlt.train_state import boxed_params

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedModel:
  config: ModelConfig
  model: Any  # models.build(config): Transformer or Llama
  params: Any
  mesh: Mesh
  rules: Any
  step: int


def load_model(checkpoint_path: str, model: ModelConfig | None = None,
               mesh: partitioning.MeshConfig = partitioning.MeshConfig()) -> LoadedModel:
  """Restores params only. Without `model`, the config saved with the checkpoint is used,
  so `xlt eval` needs no model gin file."""
  if model is None:
    stored = checkpoints.read_model_config(checkpoint_path)
    if stored is None:
      raise ValueError(f"checkpoint {checkpoint_path} stores no model config; pass a model gin "
                       "file (e.g. --gin_file=gin/models/small.gin) so MODEL is defined")
    model = models.config_from_dict(stored, checkpoint_path)
  mesh_ = partitioning.make_mesh(mesh)
  boxed = jax.eval_shape(lambda r: boxed_params(model, r), jax.random.key(0))
  shardings = partitioning.shardings_from_logical(boxed, mesh_, mesh.rules)
  abstract = nn.meta.unbox(boxed)
  params, step = checkpoints.restore_params(checkpoint_path, abstract, shardings)
  log.info("loaded %s (step %d)", checkpoint_path, step)
  return LoadedModel(model, models.build(model), params, mesh_, mesh.rules, step)
