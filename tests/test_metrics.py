"""xlt.metrics: every expected value is worked out by hand in the comments.

The Korean cases need kiwipiepy (morphemes); their sequences below were checked against
what kiwipiepy 0.24 outputs for these plain sentences.
"""
import concurrent.futures

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from xlt import metrics
from xlt.korean_morphemes import morphemes

TOL = 1e-6


# --- classification-style ---------------------------------------------------------------

def test_accuracy_and_macro_f1_by_hand():
  # targets a a b c / predictions a b b d; 2 of 4 equal -> accuracy 50.
  # labels (targets or predictions): a: tp1 fp0 fn1 -> 2/3; b: tp1 fp1 fn0 -> 2/3;
  # c: tp0 fn1 -> 0; d: fp1 -> 0. macro = (2/3 + 2/3) / 4 = 1/3.
  targets, predictions = ["a", "a", "b", "c"], ["a", "b", "b", "d"]
  assert metrics.accuracy(targets, predictions) == pytest.approx(50.0, abs=TOL)
  assert metrics.macro_f1(targets, predictions) == pytest.approx(100 / 3, abs=TOL)


def test_macro_f1_counts_labels_only_predicted():
  # targets 0 0 1 1 / predictions 0 0 1 2: label 0: tp2 -> F1 1; label 1: tp1 fn1 ->
  # 2/(2+1) = 2/3; label 2 (never a target): fp1 -> 0. macro = (1 + 2/3 + 0) / 3 = 5/9
  # (over the targets' labels only it would be (1 + 2/3) / 2 = 5/6). accuracy 3/4.
  targets, predictions = [0, 0, 1, 1], [0, 0, 1, 2]
  assert metrics.macro_f1(targets, predictions) == pytest.approx(500 / 9, abs=TOL)
  assert metrics.accuracy(targets, predictions) == pytest.approx(75.0, abs=TOL)


def test_exact_match_strips_and_takes_any_answer():
  # " yes" vs "yes " -> equal after strip; "no" vs "No" -> case differs; ["a", "b"] vs
  # "b" -> one of the answers. 2 of 3.
  targets, predictions = [" yes", "no", ["a", "b"]], ["yes ", "No", "b"]
  assert metrics.exact_match(targets, predictions) == pytest.approx(200 / 3, abs=TOL)


# --- SQuAD / KorQuAD --------------------------------------------------------------------

def test_squad_english_by_hand():
  # 1. "The Eiffel Tower" / "eiffel tower!": both normalise to "eiffel tower" -> EM 1, F1 1.
  # 2. ["Barack Obama", "Obama"] / "President Obama": vs "barack obama" 1 common token,
  #    P 1/2 R 1/2 F1 1/2; vs "obama" P 1/2 R 1 F1 2/3 -> max 2/3; EM 0.
  # 3. "an apple a day" / "apple pie": "apple day" vs "apple pie", 1 common, F1 1/2; EM 0.
  # EM = 1/3; F1 = (1 + 2/3 + 1/2) / 3 = 13/18.
  out = metrics.squad(["The Eiffel Tower", ["Barack Obama", "Obama"], "an apple a day"],
                      ["eiffel tower!", "President Obama", "apple pie"], "en")
  assert out["squad_em"] == pytest.approx(100 / 3, abs=TOL)
  assert out["squad_f1"] == pytest.approx(1300 / 18, abs=TOL)


def test_squad_korean_korquad_convention():
  # 1. ["서울", "서울특별시"] / "《서울》은": 《》 become spaces -> "서울 은", characters
  #    서 울 은 (spaces excluded). vs 서울: 2 common, P 2/3 R 1 -> F1 4/5; vs 서울특별시:
  #    P 2/3 R 2/5 -> F1 1/2; max 4/5; EM 0.
  # 2. "이순신" / "'이순신'": the quotes go -> EM 1, F1 1.
  # EM = 1/2, F1 = (4/5 + 1) / 2 = 9/10.
  targets, predictions = [["서울", "서울특별시"], "이순신"], ["《서울》은", "'이순신'"]
  out = metrics.squad(targets, predictions, "ko")
  assert out["squad_em"] == pytest.approx(50.0, abs=TOL)
  assert out["squad_f1"] == pytest.approx(90.0, abs=TOL)
  # English rules keep 《서울》은 as one token that matches nothing: F1 (0 + 1) / 2.
  assert metrics.squad(targets, predictions, "en")["squad_f1"] == pytest.approx(50.0, abs=TOL)


# --- ROUGE-L ----------------------------------------------------------------------------

def test_rouge_l_english_by_hand():
  # 1. "the cat sat on the mat" / "The cat lay on the mat": lowercased, LCS
  #    the cat on the mat = 5 of 6 and 6 -> P = R = F = 5/6.
  # 2. "hello world" / "goodbye": nothing in common -> 0. Mean (5/6 + 0) / 2 = 5/12.
  value = metrics.rouge_l(["the cat sat on the mat", "hello world"],
                          ["The cat lay on the mat", "goodbye"], "en")
  assert value == pytest.approx(500 / 12, abs=TOL)


def test_rouge_l_korean_by_hand():
  target, prediction = "고양이가 물을 마신다.", "고양이가 우유를 마셨다"
  # kiwipiepy: 고양이 가 물 을 마시 ᆫ다 . / 고양이 가 우유 를 마시 었 다
  assert morphemes(target) == ["고양이", "가", "물", "을", "마시", "ᆫ다", "."]
  assert morphemes(prediction) == ["고양이", "가", "우유", "를", "마시", "었", "다"]
  # ROUGE drops the punctuation token "." -> target 6 tokens, prediction 7.
  # LCS = 고양이 가 마시 = 3. P = 3/7, R = 3/6 = 1/2,
  # F = 2PR / (P + R) = (3/7) / (3/7 + 1/2) = (3/7) / (13/14) = 6/13 = 0.461538...
  value = metrics.rouge_l([target], [prediction], "ko")
  assert value == pytest.approx(600 / 13, abs=TOL)
  # rouge-score's own tokenizer keeps only [a-z0-9]: no tokens at all on Hangul, F = 0.
  default = rouge_scorer.RougeScorer(["rougeL"]).score(target, prediction)["rougeL"]
  assert default.fmeasure == 0.0
  assert metrics.rouge_l([target], [prediction], "en") == 0.0
  assert value != pytest.approx(default.fmeasure * 100, abs=1.0)


def test_morphemes_are_per_word_and_thread_safe():
  # Kiwi's multi-word dictionary would give one token '자연어 처리'; it is not loaded.
  assert morphemes("자연어 처리는 재미있다") == ["자연어", "처리", "는", "재미있", "다"]
  assert morphemes("  ") == []
  texts = ["고양이가 물을 마신다.", "고양이는 물을 마신다", "자연어 처리는 재미있다"] * 8
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    assert list(pool.map(morphemes, texts)) == [morphemes(t) for t in texts]


# --- BLEU / chrF ------------------------------------------------------------------------

def test_bleu_and_chrf_identical_are_100():
  for language, text in (("en", "The cat sat on the mat."), ("ko", "고양이가 물을 마신다.")):
    assert metrics.bleu([text], [text], language) == pytest.approx(100.0, abs=TOL)
    assert metrics.chrf([text], [text], language) == pytest.approx(100.0, abs=TOL)


def test_korean_bleu_counts_morphemes():
  target, prediction = "고양이가 물을 마신다", "고양이는 물을 마신다"
  # morphemes: 고양이 가 물 을 마시 ᆫ다 / 고양이 는 물 을 마시 ᆫ다 (6 each, BP 1).
  assert morphemes(prediction) == ["고양이", "는", "물", "을", "마시", "ᆫ다"]
  # matches: 1-grams 5/6; 2-grams (물 을, 을 마시, 마시 ᆫ다) 3/5; 3-grams 2/4; 4-gram 1/3.
  # BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (1/12) ** (1/4) = 0.5373
  value = metrics.bleu([target], [prediction], "ko")
  assert value == pytest.approx(100 * (1 / 12) ** 0.25, abs=TOL)
  # On whitespace words (고양이가 / 고양이는 differ) no 3-gram matches: BLEU collapses.
  raw = sacrebleu.corpus_bleu([prediction], [[target]]).score
  assert raw < 1.0 < value


def test_bleu_is_corpus_level():
  # 1. identical 4 words: n-gram matches 4/4, 3/3, 2/2, 1/1.
  # 2. 8 words, none shared: 0/8, 0/7, 0/6, 0/5.
  # Corpus counts: 4/12, 3/10, 2/8, 1/6; lengths 12 = 12 so BP 1.
  # BLEU = (1/3 * 3/10 * 1/4 * 1/6) ** (1/4) = (1/240) ** (1/4) = 0.2541
  # (the mean of the two sentence BLEUs would be about (100 + 0) / 2 = 50).
  targets = ["the cat sat down", "one two three four five six seven eight"]
  predictions = ["the cat sat down", "alpha beta gamma delta epsilon zeta eta theta"]
  assert metrics.bleu(targets, predictions, "en") == pytest.approx(
      100 * (1 / 240) ** 0.25, abs=TOL)


def test_chrf_is_corpus_level_on_korean_characters():
  # 1. 고양이 / 고양이: char 1-grams 3/3 match, 2-grams 2/2, 3-grams 1/1.
  # 2. 밥 / 물: 1-gram 0 of 1. Orders 4-6 have no n-grams (left out of the average).
  # Corpus: 1-grams P = R = 3/4; 2-grams 1; 3-grams 1. Mean P = mean R = 11/12,
  # F(beta=2) of equal P and R = 11/12 (sentence-level mean would be (100 + 0) / 2).
  value = metrics.chrf(["고양이", "물"], ["고양이", "밥"], "ko")
  assert value == pytest.approx(1100 / 12, abs=TOL)


# --- registry, mapping, errors ----------------------------------------------------------

def test_metrics_for_template_names():
  assert metrics.metrics_for(["Accuracy", "BLEU"], "nli") == ["accuracy", "bleu",
                                                             "exact_match"]
  assert metrics.metrics_for(["Squad"], "extractive_qa") == ["squad", "exact_match"]
  # the template's metric wins over the cluster's
  assert metrics.metrics_for(["ROUGE"], "translation") == ["rouge_l", "exact_match"]
  assert metrics.metrics_for(["accuracy", "rouge_l", "bleu"], "dialog") == [
      "accuracy", "rouge_l", "bleu", "exact_match"]
  assert metrics.metrics_for(["exact_match", "Exact Match"], "translation") == [
      "exact_match"]


def test_metrics_for_cluster_fallbacks():
  for cluster in ("summarization", "dialog", "paraphrasing", "structure_to_text",
                  "coreference"):
    assert metrics.metrics_for([], cluster) == ["rouge_l", "exact_match"], cluster
  assert metrics.metrics_for([], "translation") == ["bleu", "chrf", "exact_match"]
  assert metrics.metrics_for([], "extractive_qa") == ["squad", "exact_match"]
  assert metrics.metrics_for([], "closed_book_qa") == ["squad", "exact_match"]
  for cluster in ("nli", "sentiment", "wsd", "arithmetic"):
    assert metrics.metrics_for([], cluster) == ["exact_match"], cluster


def test_metrics_for_ignores_unknown_names():
  unknown = ["Other", "Edit Distance", "Pearson Correlation", "AUC", "pearson"]
  assert metrics.metrics_for(unknown, "summarization") == ["rouge_l", "exact_match"]
  assert metrics.metrics_for(unknown, "translation") == ["bleu", "chrf", "exact_match"]
  assert metrics.metrics_for(["Other", "BLEU"], "summarization") == ["bleu", "exact_match"]


def test_every_mapped_name_is_registered():
  mapped = {n for names in (*metrics.TEMPLATE_METRICS.values(),
                            *metrics.CLUSTER_METRICS.values()) for n in names}
  assert mapped | {metrics.ALWAYS} <= set(metrics.METRICS)
  assert set(metrics.METRICS) == {"accuracy", "macro_f1", "exact_match", "squad",
                                  "rouge_l", "bleu", "chrf"}


def test_compute_merges_named_values():
  out = metrics.compute(["accuracy", "squad", "exact_match"], ["The cat", "dog"],
                        ["cat", "dog"], "en")
  # accuracy / exact match: only "dog" is equal -> 50; SQuAD: "the cat" -> "cat" equal
  # after dropping the article -> EM 100, F1 100.
  assert out == pytest.approx({"accuracy": 50.0, "squad_em": 100.0, "squad_f1": 100.0,
                               "exact_match": 50.0}, abs=TOL)


def test_errors_name_the_problem():
  with pytest.raises(ValueError, match=r"'meteor'.*available.*'accuracy'"):
    metrics.compute(["accuracy", "meteor"], ["a"], ["a"], "en")
  with pytest.raises(ValueError, match=r"3 targets but 2 predictions"):
    metrics.compute(["accuracy"], ["a", "b", "c"], ["a", "b"], "en")
  with pytest.raises(ValueError, match=r"2 targets but 1 predictions"):
    metrics.rouge_l(["a", "b"], ["a"], "en")
  for name, fn in metrics.METRICS.items():
    with pytest.raises(ValueError, match="no examples"):
      fn([], [], "en")
  with pytest.raises(ValueError, match="one reference"):
    metrics.bleu([["a", "b"]], ["a"], "en")
