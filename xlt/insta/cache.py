"""Instruction embeddings on disk, keyed by encoder and text.

One .npy file per (encoder id, sha256 of the text), under
`$XLT_CACHE_DIR/insta/embeddings/<encoder id>/<2 hex>/<sha256>.npy` (default
`~/.cache/xlt`). Files are written to a temporary name and renamed, so several processes
(every host of a pod resolving the same mixture) can fill the cache at once; a file that
cannot be read or has the wrong shape is recomputed and replaced.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import tempfile
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger("xlt.insta")
ENV_VAR = "XLT_CACHE_DIR"


def cache_root() -> pathlib.Path:
  """$XLT_CACHE_DIR (default ~/.cache/xlt)."""
  return pathlib.Path(os.environ.get(ENV_VAR) or pathlib.Path.home() / ".cache" / "xlt")


def text_key(text: str) -> str:
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
  """Vectors of one encoder; `root=None` keeps nothing (every text is embedded)."""

  def __init__(self, encoder_id: str, root: str | os.PathLike | None = "default"):
    self.encoder_id = encoder_id
    if root == "default":
      root = cache_root() / "insta" / "embeddings"
    self.folder = None if root is None else pathlib.Path(root) / encoder_id

  def _path(self, text: str) -> pathlib.Path:
    key = text_key(text)
    return self.folder / key[:2] / f"{key}.npy"

  def get(self, text: str, dim: int) -> np.ndarray | None:
    if self.folder is None:
      return None
    path = self._path(text)
    if not path.is_file():
      return None
    try:
      vector = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
      log.warning("embedding cache: %s unreadable (%s); recomputing", path, e)
      return None
    if vector.shape != (dim,) or vector.dtype != np.float32:
      log.warning("embedding cache: %s holds %s %s, expected (%d,) float32; recomputing",
                  path, vector.shape, vector.dtype, dim)
      return None
    return vector

  def put(self, text: str, vector: np.ndarray) -> None:
    if self.folder is None:
      return
    path = self._path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
      np.save(f, np.asarray(vector, np.float32), allow_pickle=False)
    os.replace(f.name, path)


def embed_cached(texts: Sequence[str], embed: Callable[[list[str]], np.ndarray], dim: int,
                 cache: EmbeddingCache) -> tuple[np.ndarray, int]:
  """([N, dim] float32 in the order of `texts`, how many were embedded now)."""
  unique = list(dict.fromkeys(texts))
  found = {t: cache.get(t, dim) for t in unique}
  missing = [t for t, v in found.items() if v is None]
  if missing:
    vectors = np.asarray(embed(missing), np.float32)  # [M, dim]
    for text, vector in zip(missing, vectors):
      found[text] = vector
      cache.put(text, vector)
  out = np.zeros((len(texts), dim), np.float32)
  for i, text in enumerate(texts):
    out[i] = found[text]
  return out, len(missing)
