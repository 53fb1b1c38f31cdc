"""The INSTA encoder: JAX BERT vs sentence-transformers (torch, CPU) on the shipped
all-MiniLM-L6-v2, its tokenisation vs Hugging Face's, ids, errors, save round trip."""
import json
import shutil

import numpy as np
import pytest

from xlt.insta.encoder import SentenceEncoder, default_model_dir

SENTENCES = [
    "Does the premise entail the hypothesis? Yes or no.",
    'premise Using only the above description, is "hypothesis" definitely correct? Yes or no?',
    "Summarize the following article in one sentence.",
    "Which of the two options is the more plausible continuation of the story?",
    "Translate the sentence into Korean.",
    "ok",
    "전제가 가설을 함의합니까? 예 또는 아니요로 답하세요.",
    "다음 리뷰는 긍정적입니까, 부정적입니까? 리뷰: review",
    "질문: question\n보기: answer choices",
    "Mixed 한국어 and English in one instruction: premise / 가설",
    "UPPER case, accents (café, naïve) and digits 12345.",
    " ".join(["a long instruction that goes on"] * 80),  # > 256 tokens: truncated
]


@pytest.fixture(scope="module")
def encoder():
  return SentenceEncoder.load(None)


@pytest.fixture(scope="module")
def reference():
  from sentence_transformers import SentenceTransformer
  return SentenceTransformer(str(default_model_dir()), device="cpu")


def test_embeddings_match_sentence_transformers(encoder, reference):
  expected = reference.encode(SENTENCES, normalize_embeddings=True)  # [N, 384]
  ours = encoder.embed(SENTENCES)
  assert ours.shape == expected.shape == (len(SENTENCES), 384)
  cosine = np.sum(ours * expected, axis=1) / np.linalg.norm(expected, axis=1)
  assert np.all(cosine >= 0.9999), cosine
  np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
  assert len(encoder.tokenizer.encode(SENTENCES[-1]).ids) == encoder.max_seq_length == 256


def test_order_is_kept_whatever_the_batch_size(encoder):
  small = encoder.embed(SENTENCES, batch_size=3)
  large = encoder.embed(SENTENCES, batch_size=64)
  np.testing.assert_allclose(small, large, atol=1e-5)
  assert encoder.embed([]).shape == (0, 384)


def test_tokenisation_equals_hugging_face(encoder):
  from transformers import AutoTokenizer
  hf = AutoTokenizer.from_pretrained(str(default_model_dir()))
  expected = hf(SENTENCES, truncation=True, max_length=256, padding=True, return_tensors="np")
  ids, mask = encoder.tokenize(SENTENCES)
  length = expected["input_ids"].shape[1]
  assert ids.shape[1] % 16 == 0 and ids.shape[1] >= length
  np.testing.assert_array_equal(ids[:, :length], expected["input_ids"])
  np.testing.assert_array_equal(mask[:, :length], expected["attention_mask"])
  assert not mask[:, length:].any()
  # The uncased English vocabulary decomposes Hangul into jamo pieces (docs/insta.md).
  tokens = encoder.tokenizer.encode("전제").tokens
  assert tokens[1:-1] == hf.tokenize("전제") and len(tokens[1:-1]) > 2


def test_encoder_id_is_stable_and_depends_on_the_weights(encoder, tmp_path):
  assert SentenceEncoder.load("default").encoder_id == encoder.encoder_id
  copy = encoder.with_params({k: v * 1.01 for k, v in encoder.params.items()})
  saved = copy.save(tmp_path / "scaled")
  assert SentenceEncoder.load(str(saved)).encoder_id != encoder.encoder_id


def _copy_of_default(tmp_path):
  folder = tmp_path / "snapshot"
  shutil.copytree(default_model_dir(), folder)
  return folder


def test_bad_folders_are_refused_with_the_file_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="no such encoder folder"):
    SentenceEncoder.load(str(tmp_path / "missing"))
  folder = _copy_of_default(tmp_path)
  with pytest.raises(FileNotFoundError, match="not an aligned checkpoint"):
    SentenceEncoder.load(f"aligned:{folder}")
  pooling = folder / "1_Pooling" / "config.json"
  config = json.loads(pooling.read_text())
  config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
  pooling.write_text(json.dumps(config))
  with pytest.raises(ValueError, match=r"1_Pooling/config.json.*mean pooling"):
    SentenceEncoder.load(str(folder))
  folder = _copy_of_default(tmp_path / "b")
  (folder / "model.safetensors").unlink()
  with pytest.raises(FileNotFoundError, match="model.safetensors: missing"):
    SentenceEncoder.load(str(folder))
  folder = _copy_of_default(tmp_path / "c")
  config = json.loads((folder / "config.json").read_text())
  config["model_type"] = "xlm-roberta"
  (folder / "config.json").write_text(json.dumps(config))
  with pytest.raises(ValueError, match="BERT family only"):
    SentenceEncoder.load(str(folder))


def test_save_round_trip_loads_here_and_in_sentence_transformers(encoder, tmp_path):
  from sentence_transformers import SentenceTransformer
  out = encoder.save(tmp_path / "saved")
  again = SentenceEncoder.load(str(out))
  np.testing.assert_allclose(again.embed(SENTENCES[:4]), encoder.embed(SENTENCES[:4]),
                             atol=1e-6)
  theirs = SentenceTransformer(str(out), device="cpu").encode(SENTENCES[:4],
                                                               normalize_embeddings=True)
  assert np.all(np.sum(theirs * encoder.embed(SENTENCES[:4]), axis=1) >= 0.9999)
  with pytest.raises(FileExistsError, match="not empty"):
    encoder.save(out)
  assert encoder.save(out, overwrite=True) == out
