"""mT5 sizes: parameter counts of every published size, and logical axis names.

Everything here uses jax.eval_shape, so no parameter memory is allocated (mT5-XXL
has 13B parameters).
"""
import math
import os

import flax.linen as nn
import gin
import jax
import pytest
from jax.sharding import PartitionSpec as P

from xlt import gin_config
from xlt.models import MT5_SIZES, TINY, T5Config, init_params

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = ("small", "base", "large", "xl", "xxl")

# Parameter counts of the released Hugging Face checkpoints google/mt5-{size}
# (sum of numel over the state dict, tied/shared tensors counted once).
HF_COUNTS = {
    "small": 300_176_768,
    "base": 582_401_280,
    "large": 1_229_581_312,
    "xl": 3_742_619_648,
    "xxl": 12_921_057_280,
}
# The rounded sizes the mT5 paper (Xue et al. 2021) gives for each model.
PAPER_COUNTS = {"small": 300e6, "base": 580e6, "xl": 3.7e9, "xxl": 13e9}

ALLOWED_AXES = {"vocab", "embed", "mlp", "heads", "kv", "relpos_buckets"}


def _abstract_boxed(config: T5Config):
  return jax.eval_shape(lambda r: init_params(config, r, input_length=4, target_length=4),
                        jax.random.key(0))


def _count(config: T5Config) -> int:
  tree = nn.meta.unbox(_abstract_boxed(config))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _gin_model(size: str) -> T5Config:
  """The T5Config that gin/models/{size}.gin builds."""
  gin_config.register()
  gin.clear_config()
  try:
    gin.parse_config_file(os.path.join(REPO_ROOT, "gin", "models", f"{size}.gin"))
    return gin.get_configurable("T5Config")()
  finally:
    gin.clear_config()


@pytest.fixture(scope="module")
def counts():
  """Counted once per size (eval_shape of XXL still traces the whole model)."""
  return {size: _count(MT5_SIZES[size]) for size in SIZES}


@pytest.mark.parametrize("size", SIZES)
def test_counts_equal_released_hf_checkpoints(counts, size):
  """Protects the architecture: any missing/extra/misshaped weight changes the count."""
  assert counts[size] == HF_COUNTS[size]


@pytest.mark.parametrize("size", ["small", "base", "xl", "xxl"])
def test_counts_match_paper_within_2_percent(counts, size):
  """The sizes the mT5 paper reports (300M, 580M, 3.7B, 13B)."""
  assert abs(counts[size] - PAPER_COUNTS[size]) / PAPER_COUNTS[size] <= 0.02


def test_large_matches_paper_at_its_precision(counts):
  """mT5-Large is "1.2B" in the paper.

  1,229,581,312 is 2.5% above the rounded 1.2B figure, so a 2% band would reject the
  true count; large is checked at the paper's own precision (two significant figures).
  """
  assert round(counts["large"] / 1e8) / 10 == 1.2


@pytest.mark.parametrize("size", SIZES)
def test_gin_model_files_equal_mt5_sizes(size):
  """gin/models/{size}.gin and MT5_SIZES[size] must describe the same model."""
  from_gin = _gin_model(size)
  expected = MT5_SIZES[size]
  for field in T5Config.__dataclass_fields__:
    assert getattr(from_gin, field) == getattr(expected, field), field
  assert from_gin == expected


def test_gin_counts_equal_hf_counts():
  """The gin files themselves (not only MT5_SIZES) build the released sizes."""
  for size in ("small", "base"):
    assert _count(_gin_model(size)) == HF_COUNTS[size]


@pytest.mark.parametrize("config", [TINY, MT5_SIZES["small"]], ids=["tiny", "small"])
def test_every_param_has_logical_axis_names(config):
  """A parameter without axis names would silently be replicated on every device."""
  boxed = _abstract_boxed(config)
  specs = nn.get_partition_spec(boxed)
  leaves = jax.tree_util.tree_leaves_with_path(nn.meta.unbox(boxed))
  flat_specs = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))
  assert len(leaves) == len(flat_specs)
  assert len(leaves) > 10
  for (path, leaf), spec in zip(leaves, flat_specs):
    name = jax.tree_util.keystr(path)
    assert isinstance(spec, P), name
    assert len(leaf.shape) >= 1, name
    assert len(spec) == len(leaf.shape), f"{name}: {spec} for shape {leaf.shape}"
    assert all(axis is not None for axis in spec), f"{name}: {spec}"
    assert set(spec) <= ALLOWED_AXES, f"{name}: {spec}"
