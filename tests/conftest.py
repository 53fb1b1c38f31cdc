"""Test set-up shared by every test module.

Eight fake CPU devices, so sharding is exercised everywhere (must happen before jax
is imported). Tests that need one device build a mesh from jax.devices()[:1].
"""
import os
import pathlib
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))


def subprocess_env(**extra: str) -> dict[str, str]:
  """Environment for a child `python -m xlt ...`: CPU only, one device unless asked."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update({"JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2",
              "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"})
  env.update(extra)
  return env


@pytest.fixture
def repo_root() -> pathlib.Path:
  return REPO_ROOT


@pytest.fixture
def shared_data() -> pathlib.Path:
  if not SHARED_DATA.is_dir():
    pytest.skip(f"needs the shared test data at {SHARED_DATA} (absent in a user's checkout)")
  return SHARED_DATA
