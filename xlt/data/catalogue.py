"""What every dataset of xlt is, where it comes from, and who may pass it on.

Two meta-datasets (DESIGN.md): KORANI, 51 Korean benchmarks in 17 clusters, and the English
P3 mixture (T0's training datasets, T0's held-out evaluation datasets, and the paper's
English additions). Keys are stable ids used in task names: a KORANI key such as "klue_nli",
or a promptsource key such as "super_glue/rte".

Sources of the facts below (looked up, not remembered):
- English licences and train sizes: the Hugging Face dataset cards (README.md YAML header,
  huggingface/datasets repository, datasets/<name>/README.md). A card that says "unknown"
  or gives no licence is written "unverified: see <url>".
- KORANI directory names (`korani_dirs`): the `dataset_name` values of the KORANI sample
  CSVs and the README of github.com/CHLee0801/KORANI-Instruction-Tuning. The README says
  the release zip ships prepared CSVs for every dataset except nikl_coref, korquad1, unsmile
  and similar_corpus, for which it ships a README only.
- Which AIHub corpus a KORANI dataset was built from is inferred from its rows and says so
  in `how_to_get`; AIHub / NIKL / ETRI / Dacon terms could not be checked here.

`redistributable` is True only where the licence, as verified, lets anyone share a prepared
(reformatted) copy, possibly non-commercially or share-alike; no-derivatives, custom or
closed terms and every unverified licence give False.

Standard library only: importing this never touches TensorFlow, SeqIO or the network.
"""
from __future__ import annotations

import dataclasses
import difflib
import re

META_DATASETS = ("korani", "p3_train", "p3_heldout", "p3_extra", "demo")
LANGUAGES = ("ko", "en")
TASK_KINDS = ("nlu", "nlg")

# The 17 KORANI clusters in DESIGN.md's order. The English P3 clusters use the same slugs
# where the cluster is the same, and every P3 cluster is one of these.
CLUSTERS: dict[str, str] = {
    "sentiment": "Sentiment",
    "hate_speech": "Hate speech",
    "topic_classification": "Topic classification",
    "intent": "Intent",
    "paraphrase_identification": "Paraphrase identification",
    "nli": "NLI",
    "paraphrasing": "Paraphrasing",
    "wsd": "Word sense disambiguation",
    "sentence_completion": "Sentence completion",
    "structure_to_text": "Structure-to-text",
    "summarization": "Summarization",
    "extractive_qa": "Extractive QA",
    "multiple_choice_qa": "Multiple-choice QA",
    "dialog": "Dialogs",
    "translation": "Translation",
    "coreference": "Coreference",
    "closed_book_qa": "Closed-book QA",
}
KORANI_CLUSTERS = tuple(CLUSTERS)
# The project's generated demo datasets (tasks/demo.py) add two clusters of their own.
CLUSTERS.update({"arithmetic": "Arithmetic (demo)", "word_order": "Word order (demo)"})

# Held out of training in both languages, mirroring T0.
HELD_OUT_CLUSTERS = frozenset({"nli", "sentence_completion", "wsd", "coreference"})

# Generation clusters; every other cluster is understanding (classification, QA with
# options, extractive QA). This gives the paper's 34 NLU / 17 NLG split of KORANI exactly.
# The one borderline case is coreference: NIKL Coref is scored by ROUGE-L, but its answers
# are mentions taken from the input (extractive), and counting it NLG would give 33 / 18,
# so coreference is NLU here, as are WinoGrande and WSC.
NLG_CLUSTERS = frozenset({"paraphrasing", "structure_to_text", "summarization", "dialog",
                          "translation", "closed_book_qa"})


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """One dataset of a meta-dataset."""

  key: str            # stable id used in task names: "klue_nli", "super_glue/rte"
  name: str           # display name: "KLUE-NLI", "SuperGLUE RTE"
  language: str       # "ko" | "en"
  meta_dataset: str   # "korani" | "p3_train" | "p3_heldout" | "p3_extra"
  cluster: str        # a CLUSTERS slug
  task_kind: str      # "nlu" | "nlg"
  licence: str
  url: str            # where to get it
  how_to_get: str     # download steps / where the files go
  redistributable: bool
  raw_source: bool = False            # xlt reads the dataset's public raw files itself
  korani_dirs: tuple[str, ...] = ()   # directory names the KORANI release may use
  hf_path: str | None = None          # English: Hugging Face datasets path
  hf_name: str | None = None          # English: Hugging Face config
  train_examples: int | None = None   # train split size (English: for T0 mixture rates)

  @property
  def held_out(self) -> bool:
    return self.cluster in HELD_OUT_CLUSTERS


def slug(key: str) -> str:
  """A dataset key as it appears in task names: 'super_glue/wsc.fixed' -> 'super_glue_wsc_fixed'."""
  return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


def _unverified(url: str) -> str:
  return f"unverified: see {url}"


# ------------------------------------------------------------------------------ KORANI

KORANI_URL = "https://github.com/CHLee0801/KORANI-Instruction-Tuning"
AIHUB_URL = "https://aihub.or.kr"
NIKL_URL = "https://corpus.korean.go.kr"


@dataclasses.dataclass(frozen=True)
class _Src:
  licence: str
  url: str
  how_to_get: str
  redistributable: bool


def _public(licence: str, url: str, files: str, redistributable: bool = True) -> _Src:
  return _Src(licence, url, f"Download {files} from {url}.", redistributable)


def _unknown_public(url: str, files: str) -> _Src:
  return _Src(_unverified(url), url, f"Download {files} from {url}.", False)


def _aihub(corpus: str, inferred: bool = True) -> _Src:
  guess = " (corpus inferred from the KORANI rows, unverified)" if inferred else ""
  return _Src(f"AIHub terms of use, {_unverified(AIHUB_URL)}", AIHUB_URL,
              f"Log in to {AIHUB_URL}, request '{corpus}'{guess} and download it once "
              "approved; the KORANI release zip ships a prepared copy.", False)


_KORANI_ONLY = _Src(
    _unverified(KORANI_URL), KORANI_URL,
    "Original source not identified; the KORANI release zip ships a prepared copy.", False)
_KLUE = "https://github.com/KLUE-benchmark/KLUE"
_KOBEST = "https://huggingface.co/datasets/skt/kobest_v1"
_KAKAO = "https://github.com/kakaobrain/kor-nlu-datasets"


def _klue(task: str) -> _Src:
  return _public("CC BY-SA 4.0", _KLUE, f"klue_benchmark/{task}-v1.1/{task}-v1.1_"
                 "{train,dev}.json")


def _kobest(task: str) -> _Src:
  return _Src("CC BY-SA 4.0", _KOBEST,
              f"Download {task}/{{train,validation,test}}.jsonl from {_KOBEST}, or run "
              f"datasets.load_dataset('skt/kobest_v1', '{task}') once.", True)


# key, display name, cluster, source, KORANI directory names. Order: DESIGN.md.
_KORANI_ROWS: tuple[tuple[str, str, str, _Src, tuple[str, ...]], ...] = (
    # Sentiment (5)
    ("nsmc", "NSMC", "sentiment",
     _public("CC0 1.0", "https://github.com/e9t/nsmc", "ratings_train.txt and ratings_test.txt"),
     ("naver_movie",)),
    ("naver_shopping", "Naver Shopping", "sentiment",
     _unknown_public("https://github.com/bab2min/corpus",
                     "sentiment/naver_shopping.txt (star rating, review)"),
     ()),
    ("aihub_emo", "AIHub Emo", "sentiment",
     _aihub("감성 대화 말뭉치 (emotional dialogues)"), ()),
    ("sosang_sentiment", "Sosang Sentiment", "sentiment",
     _aihub("소상공인 고객 주문 질의-응답 텍스트 (small-business customer dialogues)"),
     ()),
    ("kobest_sentineg", "KoBEST SentiNeg", "sentiment", _kobest("sentineg"), ()),
    # Hate speech (4)
    ("beep", "BEEP!", "hate_speech",
     _public("CC BY-SA 4.0", "https://github.com/kocohub/korean-hate-speech",
             "labeled/train.tsv and labeled/dev.tsv"),
     ("beep_hate",)),
    ("curse_detection", "Curse Detection", "hate_speech",
     _unknown_public("https://github.com/2runo/Curse-detection-data",
                     "the labelled sentence file"),
     ()),
    ("unsmile", "Unsmile", "hate_speech",
     _Src("CC BY-NC-ND 4.0", "https://github.com/smilegate-ai/korean_unsmile_dataset",
          "Download the train/valid TSVs from https://github.com/smilegate-ai/"
          "korean_unsmile_dataset (or load_dataset('smilegate-ai/kor_unsmile')); the KORANI "
          "release ships only a README for it.", False),
     ()),
    ("apeach", "APEACH", "hate_speech",
     _public("CC BY-SA 4.0", "https://github.com/jason9693/APEACH",
             "test.csv (or the Hugging Face repo jason9693/APEACH)"),
     ()),
    # Topic classification (3)
    ("klue_ynat", "KLUE-TC/YNAT", "topic_classification", _klue("ynat"),
     ("klue_tc", "ynat")),
    ("ko_conversation", "Ko Conversation", "topic_classification",
     _aihub("한국어 대화 (Korean dialogues, small businesses and public services)"), ()),
    ("callcenter", "Callcenter", "topic_classification",
     _aihub("민원(콜센터) 질의-응답 (call-centre dialogues)"), ()),
    # Intent (3)
    ("daily_chat", "Daily Chat", "intent",
     _aihub("한국어 대화 (Korean dialogues, utterance intents)"), ()),
    ("sae4k", "Sae4k", "intent",
     _unknown_public("https://github.com/warnikchow/sae4k", "sae4k_v1.txt"), ()),
    ("stylekqc", "StyleKQC", "intent",
     _public("CC BY-SA 4.0", "https://github.com/cynthia/stylekqc",
             "{act,topic}/{train,dev,test}.tsv"),
     ()),
    # Paraphrase identification (5)
    ("parakqc", "ParaKQC", "paraphrase_identification",
     _unknown_public("https://github.com/warnikchow/paraKQC", "data/paraKQC_v1.txt"), ()),
    ("klue_sts", "KLUE-STS", "paraphrase_identification", _klue("klue-sts"), ()),
    ("question_pair", "Question Pair", "paraphrase_identification",
     _public("MIT", "https://github.com/songys/Question_pair",
             "kor_pair_train.csv and kor_Pair_test.csv"),
     ()),
    ("korsts", "KorSTS", "paraphrase_identification",
     _public("CC BY-SA 4.0", _KAKAO, "KorSTS/sts-{train,dev,test}.tsv"), ("kor_sts",)),
    ("korss", "KorSS", "paraphrase_identification", _KORANI_ONLY, ("kor_ss",)),
    # NLI (2, held out)
    ("klue_nli", "KLUE-NLI", "nli", _klue("klue-nli"), ()),
    ("kornli", "KorNLI", "nli",
     _public("CC BY-SA 4.0", _KAKAO,
             "KorNLI/{multinli.train,snli_1.0_train}.ko.tsv and xnli.{dev,test}.ko.tsv"),
     ()),
    # Paraphrasing (1)
    ("similar_corpus", "Similar Corpus", "paraphrasing",
     _Src(f"NIKL corpus agreement, {_unverified(NIKL_URL)}", NIKL_URL,
          f"Request the NIKL paraphrase (유사 문장) corpus on {NIKL_URL} (corpus inferred, "
          "unverified); the KORANI release ships only a README for it.", False),
     ()),
    # Word sense disambiguation (1, held out)
    ("kobest_wic", "KoBEST WiC", "wsd", _kobest("wic"), ()),
    # Sentence completion (2, held out)
    ("kobest_hellaswag", "KoBEST HellaSwag", "sentence_completion", _kobest("hellaswag"), ()),
    ("kobest_copa", "KoBEST COPA", "sentence_completion", _kobest("copa"), ()),
    # Structure-to-text (1)
    ("com_gen", "Com Gen", "structure_to_text",
     _Src(_unverified("https://github.com/J-Seo/KommonGen"),
          "https://github.com/J-Seo/KommonGen",
          "Korean CommonGen (KommonGen, identification inferred, unverified); the KORANI "
          "release zip ships a prepared copy.", False),
     ()),
    # Summarization (5)
    ("dacon_news", "Dacon News", "summarization",
     _Src(f"Dacon competition rules, {_unverified('https://dacon.io')}", "https://dacon.io",
          "Join the Dacon Korean document summarization competition on https://dacon.io "
          "and download its news data; the KORANI release zip ships a prepared copy.", False),
     ()),
    ("book_summary", "Book", "summarization", _aihub("도서자료 요약 (book summaries)"),
     ("book",)),
    ("document_editorial", "Document Editorial", "summarization",
     _aihub("문서요약 텍스트 (editorials)", inferred=False), ()),
    ("document_news", "Document News", "summarization",
     _aihub("문서요약 텍스트 (news articles)", inferred=False), ()),
    ("report_summary", "Report", "summarization",
     _aihub("요약문 및 레포트 생성 데이터 (report summaries)"), ("report",)),
    # Extractive QA (7)
    ("korquad", "KorQuAD1", "extractive_qa",
     _Src("CC BY-ND (HF card squad_kor_v1: CC BY-ND 4.0)", "https://korquad.github.io",
          "Download KorQuAD_v1.0_train.json and KorQuAD_v1.0_dev.json from "
          "https://korquad.github.io; the KORANI release ships only a README for it.", False),
     ("korquad1",)),
    ("nia_qa", "NIA QA", "extractive_qa",
     _aihub("일반상식 (Wikipedia-based general-knowledge QA)"), ()),
    ("klue_mrc", "KLUE-MRC", "extractive_qa", _klue("klue-mrc"), ()),
    ("aihub_mrc", "AIHub MRC", "extractive_qa", _aihub("기계독해 (news MRC)"), ()),
    ("book_mrc", "Book MRC", "extractive_qa", _aihub("도서자료 기계독해 (book MRC)"), ()),
    ("news_qa", "News QA", "extractive_qa", _aihub("뉴스 기사 기계독해 (news MRC)"), ()),
    ("kobest_boolq", "KoBEST BoolQ", "extractive_qa", _kobest("boolq"), ()),
    # Multiple-choice QA (1)
    ("document_qa", "Document QA", "multiple_choice_qa",
     _aihub("행정 문서 대상 기계독해 (administrative documents)"), ()),
    # Dialogs (6)
    ("twitter", "Twitter", "dialog", _KORANI_ONLY, ()),
    ("aihub_daily_dial", "AIHub Daily Dial", "dialog",
     _aihub("한국어 SNS (chat-app conversations)"), ()),
    ("aihub_emo_dial", "AIHub Emo Dial", "dialog",
     _aihub("감성 대화 말뭉치 (emotional dialogues)"), ()),
    ("aihub_korean_dial", "AIHub Korean Dial", "dialog",
     _aihub("한국어 대화 (Korean dialogues, 2018)"), ("aihub_korean_dialog2018",)),
    ("aihub_minwon", "AIHub Minwon", "dialog",
     _aihub("민원(콜센터) 질의-응답 (call-centre dialogues)"), ()),
    ("aihub_tod", "AIHub TOD", "dialog",
     _aihub("용도별 목적대화 (task-oriented dialogues)"), ()),
    # Translation (3)
    ("ko_en_technology", "Ko-En Technology", "translation",
     _aihub("한국어-영어 번역 말뭉치(기술과학)", inferred=False), ()),
    ("ko_en_social", "Ko-En Social", "translation",
     _aihub("한국어-영어 번역 말뭉치(사회과학)", inferred=False), ()),
    ("ko_en_parallel", "Ko-En Parallel", "translation",
     _aihub("한국어-영어 번역(병렬) 말뭉치", inferred=False), ()),
    # Coreference (1, held out)
    ("nikl_coref", "NIKL Coref", "coreference",
     _Src(f"NIKL corpus agreement, {_unverified(NIKL_URL)}", NIKL_URL,
          f"Request the NIKL coreference corpus on {NIKL_URL} (exact corpus name "
          "unverified); the KORANI release ships only a README for it "
          "(coreference_resolution/nikl_coref).", False),
     ()),
    # Closed-book QA (1)
    ("etri_qa", "ETRI QA", "closed_book_qa",
     _Src(f"ETRI terms, {_unverified('https://aiopen.etri.re.kr')}",
          "https://aiopen.etri.re.kr",
          "Request the QA data from ETRI (https://aiopen.etri.re.kr, corpus unverified); the "
          "KORANI release zip ships a prepared copy.", False),
     ()),
)

# Datasets whose public raw files xlt reads itself (besides the KORANI CSVs).
RAW_SOURCE_KEYS = frozenset({
    "klue_nli", "kornli", "klue_sts", "korsts", "question_pair", "beep", "apeach", "stylekqc",
    "klue_ynat", "klue_mrc", "korquad", "nsmc", "kobest_boolq", "kobest_copa",
    "kobest_hellaswag", "kobest_wic", "kobest_sentineg"})


def _korani(key: str, name: str, cluster: str, src: _Src, dirs: tuple[str, ...]) -> DatasetInfo:
  return DatasetInfo(
      key=key, name=name, language="ko", meta_dataset="korani", cluster=cluster,
      task_kind="nlg" if cluster in NLG_CLUSTERS else "nlu", licence=src.licence,
      url=src.url, how_to_get=src.how_to_get, redistributable=src.redistributable,
      raw_source=key in RAW_SOURCE_KEYS, korani_dirs=tuple(dict.fromkeys((key,) + dirs)))


# -------------------------------------------------------------------------- English P3

_CC_BY = "CC BY 4.0"
_CC_BY_SA3 = "CC BY-SA 3.0"
_CC_BY_SA4 = "CC BY-SA 4.0"
_ADV_QA = "CC BY-SA 4.0 (HF card; its text says CC BY-SA 3.0)"
_RACE = "RACE terms: non-commercial research only, no reproduction"
_U = None  # unverified: the HF card says "unknown" or gives no licence

# promptsource key, display name, cluster, licence (None: unverified), redistributable,
# train examples (None: no train split). Licences and sizes from the HF dataset cards.
_P3_ROWS: dict[str, tuple[tuple[str, str, str, str | None, bool, int | None], ...]] = {
    "p3_train": (
        ("commonsense_qa", "CommonsenseQA", "multiple_choice_qa", "MIT", True, 9741),
        ("dream", "DREAM", "multiple_choice_qa", _U, False, 6116),
        ("quail", "QuAIL", "multiple_choice_qa", "CC BY-NC-SA 4.0", True, 10246),
        ("quartz", "QuaRTz", "multiple_choice_qa", _CC_BY, True, 2696),
        ("social_i_qa", "Social IQa", "multiple_choice_qa", _U, False, 33410),
        ("wiqa", "WIQA", "multiple_choice_qa", _U, False, 29808),
        ("cosmos_qa", "Cosmos QA", "multiple_choice_qa", _CC_BY, True, 25262),
        ("qasc", "QASC", "multiple_choice_qa", _CC_BY, True, 8134),
        ("quarel", "QuaRel", "multiple_choice_qa", _U, False, 1941),
        ("sciq", "SciQ", "multiple_choice_qa", "CC BY-NC 3.0", True, 11679),
        ("wiki_hop/original", "WikiHop", "multiple_choice_qa", _CC_BY_SA3, True, 43738),
        ("adversarial_qa/dbidaf", "AdversarialQA D(BiDAF)", "extractive_qa", _ADV_QA, True,
         10000),
        ("adversarial_qa/dbert", "AdversarialQA D(BERT)", "extractive_qa", _ADV_QA, True,
         10000),
        ("adversarial_qa/droberta", "AdversarialQA D(RoBERTa)", "extractive_qa", _ADV_QA, True,
         10000),
        ("quoref", "Quoref", "extractive_qa", _CC_BY, True, 19399),
        ("ropes", "ROPES", "extractive_qa", _CC_BY, True, 10924),
        ("duorc/SelfRC", "DuoRC SelfRC", "extractive_qa", "MIT", True, 60721),
        ("duorc/ParaphraseRC", "DuoRC ParaphraseRC", "extractive_qa", "MIT", True, 69524),
        ("kilt_tasks/hotpotqa", "KILT HotpotQA", "closed_book_qa", "MIT", True, 88869),
        ("wiki_qa", "WikiQA", "closed_book_qa",
         "Microsoft Research Data License Agreement (research use only)", False, 20360),
        ("common_gen", "CommonGen", "structure_to_text", "MIT", True, 67389),
        ("wiki_bio", "WikiBio", "structure_to_text", _CC_BY_SA3, True, 582659),
        ("amazon_polarity", "Amazon Polarity", "sentiment", "Apache-2.0", True, 3600000),
        ("app_reviews", "App Reviews", "sentiment", _U, False, 288065),
        ("imdb", "IMDB", "sentiment", _U, False, 25000),
        ("rotten_tomatoes", "Rotten Tomatoes", "sentiment", _U, False, 8530),
        ("yelp_review_full", "Yelp Review Full", "sentiment", "Yelp Dataset Agreement (custom)",
         False, 650000),
        ("cnn_dailymail/3.0.0", "CNN/DailyMail", "summarization", "Apache-2.0", True, 287113),
        ("gigaword", "Gigaword", "summarization", _U, False, 3803957),
        ("multi_news", "Multi-News", "summarization", _U, False, 44972),
        ("samsum", "SAMSum", "summarization", "CC BY-NC-ND 4.0", False, 14732),
        ("xsum", "XSum", "summarization", _U, False, 204045),
        ("ag_news", "AG News", "topic_classification", _U, False, 120000),
        ("dbpedia_14", "DBpedia14", "topic_classification", "CC BY-SA 3.0 and GFDL", True,
         560000),
        ("trec", "TREC", "topic_classification", _U, False, 5452),
        ("glue/mrpc", "MRPC", "paraphrase_identification", _U, False, 3668),
        ("glue/qqp", "QQP", "paraphrase_identification", _U, False, 363846),
        ("paws/labeled_final", "PAWS", "paraphrase_identification",
         "free for any purpose, attribution to Google appreciated (custom)", True, 49401),
    ),
    "p3_heldout": (
        # ANLI: the three rounds' train splits together (16946 + 45460 + 100459).
        ("anli", "ANLI", "nli", "CC BY-NC 4.0", True, 162865),
        ("super_glue/cb", "SuperGLUE CB", "nli", _U, False, 250),
        ("super_glue/rte", "SuperGLUE RTE", "nli", _U, False, 2490),
        ("super_glue/copa", "SuperGLUE COPA", "sentence_completion", _U, False, 400),
        ("hellaswag", "HellaSwag", "sentence_completion", "MIT", True, 39905),
        ("story_cloze/2016", "StoryCloze 2016", "sentence_completion", _U, False, None),
        ("winogrande/winogrande_xl", "WinoGrande XL", "coreference", _U, False, 40398),
        ("super_glue/wsc.fixed", "SuperGLUE WSC", "coreference", _U, False, 554),
        ("super_glue/wic", "SuperGLUE WiC", "wsd", _U, False, 5428),
    ),
    # The paper's English additions. None may sit in a held-out cluster: ART (abductive
    # NLI, choose a hypothesis) and CBT (cloze, 10 options) are multiple-choice QA here.
    "p3_extra": (
        ("super_glue/boolq", "SuperGLUE BoolQ", "multiple_choice_qa", _U, False, 9427),
        ("super_glue/multirc", "SuperGLUE MultiRC", "multiple_choice_qa", _U, False, 27243),
        ("super_glue/record", "SuperGLUE ReCoRD", "extractive_qa", _U, False, 100730),
        ("race/high", "RACE high", "multiple_choice_qa", _RACE, False, 62445),
        ("race/middle", "RACE middle", "multiple_choice_qa", _RACE, False, 25421),
        ("squad_v2", "SQuAD 2.0", "extractive_qa", _CC_BY_SA4, True, 130319),
        ("drop", "DROP", "extractive_qa", _U, False, 77409),
        ("ai2_arc/ARC-Challenge", "ARC Challenge", "multiple_choice_qa", _CC_BY_SA4, True, 1119),
        ("ai2_arc/ARC-Easy", "ARC Easy", "multiple_choice_qa", _CC_BY_SA4, True, 2251),
        ("piqa", "PIQA", "multiple_choice_qa", _U, False, 16113),
        ("openbookqa/main", "OpenBookQA", "multiple_choice_qa", _U, False, 4957),
        ("art", "ART (aNLI)", "multiple_choice_qa", _U, False, 169654),
        ("cbt/CN", "CBT common nouns", "multiple_choice_qa", "GFDL 1.3", True, 120769),
        ("emotion", "Emotion", "sentiment", _U, False, 16000),
        ("pubmed_qa/pqa_labeled", "PubMedQA labeled", "multiple_choice_qa", "MIT", True, 1000),
        ("trivia_qa/unfiltered", "TriviaQA unfiltered", "closed_book_qa", _U, False, 87622),
        ("web_questions", "WebQuestions", "closed_book_qa", _U, False, 3778),
        ("yahoo_answers_topics", "Yahoo Answers Topics", "topic_classification", _U, False,
         1400000),
    ),
}

_STORY_CLOZE_HOW = (
    "Manual download: request the 2016 Story Cloze val/test CSVs with the form at "
    "https://cs.rochester.edu/nlp/rocstories/, then run datasets.load_dataset('story_cloze', "
    "'2016', data_dir=<folder with the CSVs>) once (it has no train split).")


def _english(meta: str, key: str, name: str, cluster: str, licence: str | None,
             redistributable: bool, train: int | None) -> DatasetInfo:
  hf_path, _, hf_name = key.partition("/")
  card = f"https://huggingface.co/datasets/{hf_path}"
  url = "https://cs.rochester.edu/nlp/rocstories/" if hf_path == "story_cloze" else card
  args = repr(hf_path) + (f", {hf_name!r}" if hf_name else "")
  how = (_STORY_CLOZE_HOW if hf_path == "story_cloze" else
         f"Run datasets.load_dataset({args}) once with network access (it fills the "
         "Hugging Face cache); xlt then reads it offline.")
  return DatasetInfo(
      key=key, name=name, language="en", meta_dataset=meta, cluster=cluster,
      task_kind="nlg" if cluster in NLG_CLUSTERS else "nlu",
      licence=licence or _unverified(card), url=url, how_to_get=how,
      redistributable=redistributable, hf_path=hf_path, hf_name=hf_name or None,
      train_examples=train)


def _demo(key: str, name: str, cluster: str, kind: str) -> DatasetInfo:
  return DatasetInfo(
      key=key, name=name, language=key.split("_")[1], meta_dataset="demo", cluster=cluster,
      task_kind=kind, licence="part of xlt (generated)", url="tasks/demo.py",
      how_to_get="Generated on the fly by tasks/demo.py; nothing to download.",
      redistributable=True, raw_source=True)


# Bilingual, learnable by a tiny model in minutes; `next_number` is held out.
_DEMO = (
    _demo("demo_en_sentiment", "Demo sentiment (en)", "sentiment", "nlu"),
    _demo("demo_ko_sentiment", "Demo sentiment (ko)", "sentiment", "nlu"),
    _demo("demo_en_addition", "Demo addition (en)", "arithmetic", "nlg"),
    _demo("demo_ko_addition", "Demo addition (ko)", "arithmetic", "nlg"),
    _demo("demo_en_reverse", "Demo word reversal (en)", "word_order", "nlg"),
    _demo("demo_en_next_number", "Demo next number (en)", "sentence_completion", "nlu"),
    _demo("demo_ko_next_number", "Demo next number (ko)", "sentence_completion", "nlu"),
)

# ------------------------------------------------------------------------------ lookup

_DATASETS: tuple[DatasetInfo, ...] = (
    tuple(_korani(*row) for row in _KORANI_ROWS)
    + tuple(_english(meta, *row) for meta, rows in _P3_ROWS.items() for row in rows)
    + _DEMO)
_BY_KEY: dict[str, DatasetInfo] = {d.key: d for d in _DATASETS}


def _normalise(name: str) -> str:
  """'KLUE-NLI', 'klue_nli', 'Klue Nli/' -> 'kluenli' (last path part, letters and digits)."""
  last = re.split(r"[\\/]", name.strip().rstrip("/\\"))[-1]
  return re.sub(r"[^0-9a-z\uac00-\ud7a3]", "", last.lower())


def _dir_index() -> dict[str, str]:
  index: dict[str, str] = {}
  for d in _DATASETS:
    if d.meta_dataset != "korani":
      continue
    for alias in (d.key, d.name, *d.korani_dirs):
      norm = _normalise(alias)
      if index.setdefault(norm, d.key) != d.key:
        raise ValueError(f"KORANI alias {alias!r} names both {index[norm]!r} and {d.key!r}")
  return index


_KORANI_DIRS = _dir_index()


def get(key: str) -> DatasetInfo:
  """The dataset with this key; KeyError naming the closest keys on a typo."""
  try:
    return _BY_KEY[key]
  except KeyError:
    close = difflib.get_close_matches(key, list(_BY_KEY), n=3, cutoff=0.6)
    lowered = {k.lower(): k for k in _BY_KEY}
    if key.lower() in lowered and lowered[key.lower()] not in close:
      close.insert(0, lowered[key.lower()])
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise KeyError(f"unknown dataset {key!r}{hint}") from None


def all_datasets() -> list[DatasetInfo]:
  """Every dataset: KORANI first (DESIGN.md order), then P3 train, held-out, extra."""
  return list(_DATASETS)


def _check(value: str | None, allowed, what: str) -> None:
  if value is not None and value not in allowed:
    raise ValueError(f"unknown {what} {value!r}; one of {', '.join(allowed)}")


def select(meta_dataset: str | None = None, cluster: str | None = None,
           language: str | None = None, held_out: bool | None = None) -> list[DatasetInfo]:
  """The datasets matching every filter given (None = any), in catalogue order."""
  _check(meta_dataset, META_DATASETS, "meta_dataset")
  _check(cluster, tuple(CLUSTERS), "cluster")
  _check(language, LANGUAGES, "language")
  return [d for d in _DATASETS
          if (meta_dataset is None or d.meta_dataset == meta_dataset)
          and (cluster is None or d.cluster == cluster)
          and (language is None or d.language == language)
          and (held_out is None or d.held_out == held_out)]


def korani_key_for_dir(dirname: str) -> str | None:
  """The KORANI key for a release directory name, ignoring case and punctuation."""
  return _KORANI_DIRS.get(_normalise(dirname))
