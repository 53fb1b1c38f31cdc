"""A local sentence-transformers snapshot as the INSTA encoder: a tiny BERT with a Korean +
English WordPiece vocabulary, built here (random weights, a tokenizer trained on
project-written text), saved by sentence-transformers, loaded by xlt. This is the path a
multilingual encoder takes for cross-lingual selection."""
import json
import pathlib

import numpy as np
import pytest

from xlt.insta import selection as sel

SENTENCES = [
    "Does the premise entail the hypothesis? Yes or no.",
    "전제가 가설을 함의합니까? 예 또는 아니요로 답하세요.",
    "premise 질문: hypothesis 참입니까?",
    "Summarize the article in one sentence.",
    "다음 문장을 요약하세요.",
]


def _corpus() -> list[str]:
  lines = []
  for i in range(200):
    lines.append(f"Does premise {i} entail the hypothesis? Yes or no. Summarize the article.")
    lines.append(f"{i}번째 전제가 가설을 함의합니까? 예 또는 아니요로 답하세요. 다음 문장을 요약하세요.")
  return lines


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> pathlib.Path:
  import torch
  from sentence_transformers import SentenceTransformer
  from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
  from transformers import BertConfig, BertModel, BertTokenizerFast
  try:
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
  except ImportError:  # sentence-transformers < 6
    from sentence_transformers.models import Normalize, Pooling, Transformer
  folder = tmp_path_factory.mktemp("snapshot")
  tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
  # Cased, accents kept: Hangul stays whole (an uncased English BERT splits it into jamo).
  tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
  tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tokenizer.train_from_iterator(_corpus(), trainers.WordPieceTrainer(
      vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
  cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
  tokenizer.post_processor = processors.TemplateProcessing(
      single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
      special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
  hf_tokenizer = BertTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]",
                                   pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                   mask_token="[MASK]", do_lower_case=False,
                                   strip_accents=False)
  torch.manual_seed(0)
  model = BertModel(BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32,
                               num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=64))
  model.save_pretrained(folder / "hf")
  hf_tokenizer.save_pretrained(folder / "hf")
  st = SentenceTransformer(modules=[Transformer(str(folder / "hf"), max_seq_length=48),
                                    Pooling(32, "mean"), Normalize()], device="cpu")
  st.save(str(folder / "st"))
  return folder / "st"


def test_local_snapshot_matches_sentence_transformers(snapshot):
  from sentence_transformers import SentenceTransformer

  from xlt.insta.encoder import SentenceEncoder
  reference = SentenceTransformer(str(snapshot), device="cpu").encode(
      SENTENCES, normalize_embeddings=True)
  encoder = SentenceEncoder.load(str(snapshot))
  ours = encoder.embed(SENTENCES)
  assert ours.shape == (len(SENTENCES), 32)
  cosine = np.sum(ours * reference, axis=1) / np.linalg.norm(reference, axis=1)
  assert np.all(cosine >= 0.9999), cosine
  assert encoder.max_seq_length == 48
  # Saved again (as the aligned encoder is), it still loads in sentence-transformers.
  saved = encoder.save(snapshot.parent / "resaved")
  again = SentenceTransformer(str(saved), device="cpu").encode(SENTENCES,
                                                               normalize_embeddings=True)
  np.testing.assert_allclose(again, reference, atol=1e-6)


def test_korean_stays_whole_with_a_korean_vocabulary(snapshot):
  from xlt.insta.encoder import SentenceEncoder
  vocab = json.loads((snapshot / "tokenizer.json").read_text())["model"]["vocab"]
  ids, mask = SentenceEncoder.load(str(snapshot)).tokenize(["전제가 가설을 함의합니까?"])
  unk = vocab["[UNK]"]
  tokens = ids[0][mask[0] == 1]
  assert unk not in tokens and len(tokens) < 12  # whole Korean pieces, not jamo or [UNK]


def test_cross_lingual_selection_runs_with_a_snapshot_encoder(snapshot, tmp_path):
  """A Korean target against an English pool (and the reverse) with a local encoder: the
  ranking covers the pool, the name carries the encoder's id, the JSON its folder."""
  from xlt.data.templates import Template
  from xlt.insta.encoder import SentenceEncoder
  encoder = SentenceEncoder.load(str(snapshot))

  def template(dataset, name, text, language):
    return Template(name=name, dataset=dataset, language=language, style="p3", input=text,
                    target="{{label}}")
  english = sel.pool_from_templates("en_pool", {
      "nli_en": ("nli", [template("nli_en", "a", "Does {{premise}} entail {{hypothesis}}?",
                                  "en")]),
      "sum_en": ("summarization", [template("sum_en", "a", "Summarize the article.", "en")])})
  korean_target = sel.Target("ko_nli", "ko_nli", (sel.Instruction(
      "ko_nli", "a", "전제가 가설을 함의합니까?"),), "ko_nli", "nli", "ko")
  selection = sel.select(korean_target, english, encoder, k=1, encoder_spec=str(snapshot),
                         cache_dir=tmp_path)
  assert {r.dataset for r in selection.ranking} == {"nli_en", "sum_en"}
  assert selection.name == f"insta/ko_nli/en_pool/top1_enc{encoder.encoder_id[:8]}"
  assert selection.encoder_spec == str(snapshot)
  korean = sel.pool_from_templates("ko_pool", {
      "nli_ko": ("nli", [template("nli_ko", "a", "전제: {{premise}} 가설을 함의합니까?", "ko")]),
      "sum_ko": ("summarization", [template("sum_ko", "a", "다음 문장을 요약하세요.", "ko")])})
  english_target = sel.free_text_target("Does the premise entail the hypothesis?")
  reverse = sel.select(english_target, korean, encoder, k=1, encoder_spec=str(snapshot),
                       cache_dir=tmp_path)
  assert len(reverse.ranking) == 2
