"""Test set-up shared by every test module.

Eight fake CPU devices, so sharding is exercised everywhere (must happen before jax
is imported). Tests that need one device build a mesh from jax.devices()[:1].
"""
import contextlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One persistent compilation cache for the whole session, created fresh by the first
# process (the xdist controller; workers and `python -m xlt` children inherit it): the
# tiny train step that dozens of CLI tests compile is compiled once.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="xlt-test-jax-cache-")
  os.environ["XLT_TEST_OWNS_JAX_CACHE"] = "1"
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))


def pytest_sessionfinish(session, exitstatus):
  """The controller removes the session's compilation cache (workers leave it)."""
  del session, exitstatus
  if os.environ.get("XLT_TEST_OWNS_JAX_CACHE") and "PYTEST_XDIST_WORKER" not in os.environ:
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def subprocess_env(**extra: str) -> dict[str, str]:
  """Environment for a child `python -m xlt ...`: CPU only, one device unless asked."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update({"JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2",
              "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"})
  env.update(extra)
  return env


@contextlib.contextmanager
def child_process(cmd: list[str], log_path, env: dict[str, str] | None = None):
  """A `python -m xlt ...` process writing stdout+stderr to `log_path`, run from the repo
  root; killed if still running on the way out, so a failing test leaves no process."""
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env or subprocess_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
      yield proc
    finally:
      if proc.poll() is None:
        proc.kill()
        proc.wait()


def run_child(cmd: list[str], log_path, timeout: float = 240) -> tuple[int, str]:
  """Runs `cmd` to the end: (exit code, its output)."""
  with child_process(cmd, log_path) as proc:
    proc.wait(timeout=timeout)
  with open(log_path) as f:
    return proc.returncode, f.read()


@pytest.fixture
def repo_root() -> pathlib.Path:
  return REPO_ROOT


@pytest.fixture
def shared_data() -> pathlib.Path:
  if not SHARED_DATA.is_dir():
    pytest.skip(f"needs the shared test data at {SHARED_DATA} (absent in a user's checkout)")
  return SHARED_DATA


def synthetic_batch(input_lengths, target_lengths, vocab_size: int, input_len: int = 16,
                    target_len: int = 8, seed: int = 0) -> dict:
  """An EncDecFeatureConverter-style numpy batch with ragged rows (0 = padding)."""
  rng = np.random.RandomState(seed)
  n = len(target_lengths)
  enc = rng.randint(2, vocab_size, size=(n, input_len)).astype(np.int32)
  tgt = rng.randint(2, vocab_size, size=(n, target_len)).astype(np.int32)
  for i in range(n):
    enc[i, input_lengths[i]:] = 0
    tgt[i, target_lengths[i]:] = 0
  dec_in = np.zeros_like(tgt)
  dec_in[:, 1:] = tgt[:, :-1]
  return {"encoder_input_tokens": enc, "decoder_input_tokens": dec_in,
          "decoder_target_tokens": tgt, "decoder_loss_weights": (tgt > 0).astype(np.float32)}


@pytest.fixture(scope="session")
def spm_model(tmp_path_factory) -> str:
  """A small SentencePiece model trained here on project-written English + Korean text."""
  import sentencepiece as spm
  folder = tmp_path_factory.mktemp("spm")
  lines = []
  for i in range(300):
    lines.append(f"The review number {i} says the movie was great and the food was bad.")
    lines.append(f"{i}번째 리뷰: 영화는 정말 좋았어요. 음식은 별로였어요. 전제와 가설의 관계는?")
  corpus = folder / "corpus.txt"
  corpus.write_text("\n".join(lines), encoding="utf-8")
  spm.SentencePieceTrainer.train(
      input=str(corpus), model_prefix=str(folder / "test_spm"), vocab_size=384,
      character_coverage=1.0, byte_fallback=True, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      model_type="unigram", minloglevel=2)
  return str(folder / "test_spm.model")
