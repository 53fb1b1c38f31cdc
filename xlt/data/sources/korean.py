"""Raw Korean datasets of the KORANI meta-dataset, read from their public releases.

Each source reads the upstream files (names and folders as released) from a root
folder given as `root=` or, at `rows()` time, by the XLT_KO_DATA_DIR environment
variable; nothing is read at import or construction. Rows have fixed field names and
label orders that the Korean / English templates are written against:

  klue_nli, kornli  premise, hypothesis, label (0 entailment, 1 neutral, 2 contradiction)
  klue_sts, korsts  sentence1, sentence2, score (0-5), label (1 similar, 0 not)
  question_pair     question1, question2, label (1 same question, 0 different)
  beep              comment, label (0 none, 1 offensive, 2 hate), bias, gender_bias
  apeach            text, label (0 not offensive, 1 offensive)
  stylekqc          sentence, act, act_name, topic, topic_name
  klue_ynat         title, label (YNAT_LABELS order)
  klue_mrc          title, context, question, answers {text, answer_start}, is_impossible
  korquad           title, context, question, answers {text, answer_start}, id
  nsmc              document, label (0 negative, 1 positive)
  kobest_*          the skt/kobest_v1 fields (see KobestSource subclasses)
"""
from __future__ import annotations

import contextlib
import csv
import itertools
import os
import pathlib
from typing import Iterable, Iterator, Mapping

from xlt.data.sources import korean_readers as kr
from xlt.data.sources.base import SPLITS, MissingDataError, RowStats, Source

ENV_VAR = "XLT_KO_DATA_DIR"

NLI_LABELS = ("entailment", "neutral", "contradiction")
YNAT_LABELS = ("IT과학", "경제", "사회", "생활문화", "세계", "스포츠", "정치")
BEEP_LABELS = ("none", "offensive", "hate")
BEEP_BIAS = ("none", "gender", "others")
APEACH_LABELS = ("Default", "Spoiled")
# StyleKQC ids carry no names in the release (cynthia/stylekqc); these were read off the
# dev rows (keyword counts per id, e.g. 194/300 act-2 rows say "...지 마", 160/200 topic-2
# rows name a messenger app) and agree with the act order of the authors' ParaKQC
# (Alt. Q, Wh- Q, prohibition, strong requirement). Not the paper's listing order.
STYLEKQC_ACTS = ("선택 의문문", "설명 의문문", "금지", "요구")
STYLEKQC_TOPICS = ("쇼핑", "스마트홈", "메신저", "일정", "엔터테인먼트", "날씨·뉴스")
COPA_QUESTIONS = ("원인", "결과")


def _index(names: Iterable[str]) -> dict[str, int]:
  return {name: i for i, name in enumerate(names)}


def _both(folder: str, name: str, upstream_dir: str) -> tuple[str, ...]:
  """`<folder>/<name>`, else the upstream layout `<folder>/<upstream_dir>/<name>`."""
  return (f"{folder}/{name}", f"{folder}/{upstream_dir}/{name}")


class KoreanSource(Source):
  """A raw Korean dataset: `files` maps each split to its files (candidate paths each)."""

  files: Mapping[str, tuple[tuple[str, ...], ...]] = {}
  how_to_get: str = ""
  reads_local_files = True

  def __init__(self, root: str | os.PathLike | None = None):
    self._root = None if root is None else pathlib.Path(root)

  @property
  def splits(self) -> tuple[str, ...]:  # type: ignore[override]
    return tuple(s for s in SPLITS if s in self.files)

  def data_root(self, split: str) -> pathlib.Path:
    if self._root is not None:
      return self._root
    env = os.environ.get(ENV_VAR, "").strip()
    if not env:
      raise MissingDataError(
          self.dataset, f"${ENV_VAR}/{self.files[split][0][0]}",
          f"Set {ENV_VAR} to the folder that holds the Korean raw data (or pass root=). "
          f"{self.how_to_get}")
    return pathlib.Path(env).expanduser()

  def paths(self, split: str) -> list[pathlib.Path]:
    """Resolve every file of `split` now, so a missing one fails before any row."""
    self.check_split(split)
    root = self.data_root(split)
    return [kr.first_existing(root, self.dataset, candidates, self.how_to_get)
            for candidates in self.files[split]]

  def rows(self, split: str, stats: RowStats) -> Iterator[dict]:
    return self.rows_from(self.paths(split), stats)

  def rows_from(self, paths: list[pathlib.Path], stats: RowStats) -> Iterator[dict]:
    items = itertools.chain.from_iterable(self.read(p) for p in paths)
    return kr.emit(items, self.build, stats)

  def read(self, path: pathlib.Path) -> Iterator[dict | kr.Bad]:
    raise NotImplementedError

  def build(self, raw: Mapping) -> dict:
    raise NotImplementedError


# ------------------------------------------------------------------ NLI and similarity

_KLUE_HOW = ("Get {name}-v1.1 from https://github.com/KLUE-benchmark/KLUE "
             "(klue_benchmark/{name}-v1.1/) or {url}, and put {name}-v1.1_train.json and "
             "{name}-v1.1_dev.json under <root>/klue/.")
_KLUE_AISTAGES = "https://aistages-prod-server-public.s3.amazonaws.com/app/Competitions"


def _klue_files(name: str) -> dict[str, tuple[tuple[str, ...], ...]]:
  return {"train": (_both("klue", f"{name}-v1.1_train.json", f"{name}-v1.1"),),
          "validation": (_both("klue", f"{name}-v1.1_dev.json", f"{name}-v1.1"),)}


class KlueNli(KoreanSource):
  dataset = "klue_nli"
  fields = ("premise", "hypothesis", "label")
  files = _klue_files("klue-nli")
  how_to_get = _KLUE_HOW.format(name="klue-nli",
                                url=f"{_KLUE_AISTAGES}/000068/data/klue-nli-v1.1.tar.gz")
  _labels = _index(NLI_LABELS)

  def read(self, path):
    return kr.read_json_list(path)

  def build(self, raw):
    return {"premise": kr.text(raw, "premise"), "hypothesis": kr.text(raw, "hypothesis"),
            "label": kr.named_label(raw, "gold_label", self._labels)}


_KAKAO_HOW = ("Get {files} from https://github.com/kakaobrain/kor-nlu-datasets ({folder}/) "
              "and put them under <root>/{local}/.")


class KorNli(KoreanSource):
  dataset = "kornli"
  fields = ("premise", "hypothesis", "label")
  files = {
      "train": (_both("kornli", "multinli.train.ko.tsv", "KorNLI"),
                _both("kornli", "snli_1.0_train.ko.tsv", "KorNLI")),
      "validation": (_both("kornli", "xnli.dev.ko.tsv", "KorNLI"),),
      "test": (_both("kornli", "xnli.test.ko.tsv", "KorNLI"),),
  }
  how_to_get = _KAKAO_HOW.format(
      files="multinli.train.ko.tsv, snli_1.0_train.ko.tsv, xnli.dev.ko.tsv and "
            "xnli.test.ko.tsv", folder="KorNLI", local="kornli")
  _labels = _index(NLI_LABELS)

  def read(self, path):
    return kr.read_delimited(path)  # bare quotes inside sentences: no CSV quoting

  def build(self, raw):
    return {"premise": kr.text(raw, "sentence1"), "hypothesis": kr.text(raw, "sentence2"),
            "label": kr.named_label(raw, "gold_label", self._labels)}


class KlueSts(KoreanSource):
  dataset = "klue_sts"
  fields = ("sentence1", "sentence2", "score", "label")
  files = _klue_files("klue-sts")
  how_to_get = _KLUE_HOW.format(name="klue-sts",
                                url=f"{_KLUE_AISTAGES}/000067/data/klue-sts-v1.1.tar.gz")

  def read(self, path):
    return kr.read_json_list(path)

  def build(self, raw):
    labels = kr.field(raw, "labels")
    if not isinstance(labels, Mapping):
      raise kr.RowSkip("bad field 'labels'")
    return {"sentence1": kr.text(raw, "sentence1"), "sentence2": kr.text(raw, "sentence2"),
            "score": kr.score(labels, "label"),
            "label": kr.index_label(labels, "binary-label", 2)}


class KorSts(KoreanSource):
  dataset = "korsts"
  fields = ("sentence1", "sentence2", "score", "label")
  files = {split: (_both("korsts", f"sts-{name}.tsv", "KorSTS"),)
           for split, name in (("train", "train"), ("validation", "dev"), ("test", "test"))}
  how_to_get = _KAKAO_HOW.format(files="sts-train.tsv, sts-dev.tsv and sts-test.tsv",
                                 folder="KorSTS", local="korsts")

  def read(self, path):
    return kr.read_delimited(path)  # stray quotes in some rows: quoting off

  def build(self, raw):
    value = kr.score(raw, "score")
    return {"sentence1": kr.text(raw, "sentence1"), "sentence2": kr.text(raw, "sentence2"),
            "score": value, "label": int(value >= 3.0)}


class QuestionPair(KoreanSource):
  dataset = "question_pair"
  fields = ("question1", "question2", "label")
  files = {"train": (("question_pair/kor_pair_train.csv",),),
           "test": (("question_pair/kor_pair_test.csv", "question_pair/kor_Pair_test.csv"),)}
  how_to_get = ("Get kor_pair_train.csv (and kor_Pair_test.csv for test) from "
                "https://github.com/songys/Question_pair and put them under "
                "<root>/question_pair/.")

  def read(self, path):
    return kr.read_delimited(path, delimiter=",", quoting=csv.QUOTE_MINIMAL)

  def build(self, raw):
    # Upstream is_duplicate is 0 for the SAME question and 1 for different ones.
    return {"question1": kr.text(raw, "question1"), "question2": kr.text(raw, "question2"),
            "label": 1 - kr.index_label(raw, "is_duplicate", 2)}


# ------------------------------------------------------------------------ hate speech


class Beep(KoreanSource):
  dataset = "beep"
  fields = ("comment", "label", "bias", "gender_bias")
  files = {"train": (_both("beep", "train.tsv", "labeled"),),
           "validation": (_both("beep", "dev.tsv", "labeled"),)}
  how_to_get = ("Get labeled/train.tsv and labeled/dev.tsv from "
                "https://github.com/kocohub/korean-hate-speech and put them under <root>/beep/.")
  _labels = _index(BEEP_LABELS)
  _bias = _index(BEEP_BIAS)
  _bool = {"True": True, "False": False}

  def read(self, path):
    return kr.read_delimited(path, quoting=csv.QUOTE_MINIMAL)  # written with CSV quoting

  def build(self, raw):
    gender = str(kr.field(raw, "contain_gender_bias")).strip()
    if gender not in self._bool:
      raise kr.RowSkip(f"unknown label '{gender}'")
    bias = BEEP_BIAS[kr.named_label(raw, "bias", self._bias)]
    return {"comment": kr.text(raw, "comments"),
            "label": kr.named_label(raw, "hate", self._labels),
            "bias": bias, "gender_bias": self._bool[gender]}


class Apeach(KoreanSource):
  """APEACH; the label column is `class` upstream (Default / Spoiled), `label` accepted."""

  dataset = "apeach"
  fields = ("text", "label")
  files = {"train": (("apeach/train.csv",),),
           "test": (("apeach/test.csv", "apeach/APEACH/test.csv"),)}
  how_to_get = ("Get train.csv and test.csv from https://huggingface.co/datasets/jason9693/APEACH "
                "(test.csv is also APEACH/test.csv in https://github.com/jason9693/APEACH) "
                "and put them under <root>/apeach/.")
  _labels = _index(APEACH_LABELS)

  def read(self, path):
    return kr.read_delimited(path, delimiter=",", quoting=csv.QUOTE_MINIMAL)

  def build(self, raw):
    column = "class" if "class" in raw else "label" if "label" in raw else "class"
    return {"text": kr.text(raw, "text"), "label": kr.index_label(raw, column, 2, self._labels)}


# --------------------------------------------------------------- intent and topics


class StyleKqc(KoreanSource):
  """StyleKQC: the act and topic files list the same sentences in the same order
  (checked on dev), so each row joins both labels; a row where they disagree is skipped."""

  dataset = "stylekqc"
  fields = ("sentence", "act", "act_name", "topic", "topic_name")
  files = {split: (("stylekqc/act_" + name + ".tsv", f"stylekqc/act/{name}.tsv"),
                   ("stylekqc/topic_" + name + ".tsv", f"stylekqc/topic/{name}.tsv"))
           for split, name in (("train", "train"), ("validation", "dev"), ("test", "test"))}
  how_to_get = ("Get act/{train,dev,test}.tsv and topic/{train,dev,test}.tsv from "
                "https://github.com/cynthia/stylekqc and put them under <root>/stylekqc/act/ "
                "and <root>/stylekqc/topic/ (or as <root>/stylekqc/act_dev.tsv etc.).")

  def rows_from(self, paths, stats):
    act_path, topic_path = paths
    pairs = itertools.zip_longest(kr.read_delimited(act_path), kr.read_delimited(topic_path))
    return kr.emit((self._join(a, t) for a, t in pairs), self.build, stats)

  @staticmethod
  def _join(act, topic):
    if act is None or topic is None:
      return kr.Bad("act/topic files disagree")
    for item in (act, topic):
      if isinstance(item, kr.Bad):
        return item
    return {"act_row": act, "topic_row": topic}

  def build(self, raw):
    act_row, topic_row = raw["act_row"], raw["topic_row"]
    sentence = kr.text(act_row, "sentence")
    if kr.text(topic_row, "sentence") != sentence:
      raise kr.RowSkip("act/topic files disagree")
    act = kr.index_label(act_row, "act", len(STYLEKQC_ACTS))
    topic = kr.index_label(topic_row, "topic", len(STYLEKQC_TOPICS))
    return {"sentence": sentence, "act": act, "act_name": STYLEKQC_ACTS[act],
            "topic": topic, "topic_name": STYLEKQC_TOPICS[topic]}


class KlueYnat(KoreanSource):
  dataset = "klue_ynat"
  fields = ("title", "label")
  files = {"train": (_both("klue", "ynat-v1.1_train.json", "ynat-v1.1"),),
           "validation": (_both("klue", "ynat-v1.1_dev.json", "ynat-v1.1"),)}
  how_to_get = ("Get ynat-v1.1 from https://github.com/KLUE-benchmark/KLUE "
                f"(klue_benchmark/ynat-v1.1/) or {_KLUE_AISTAGES}/000066/data/ynat-v1.1.tar.gz, "
                "and put ynat-v1.1_train.json and ynat-v1.1_dev.json under <root>/klue/.")
  _labels = _index(YNAT_LABELS)

  def read(self, path):
    return kr.read_json_list(path)

  def build(self, raw):
    return {"title": kr.text(raw, "title"), "label": kr.named_label(raw, "label", self._labels)}


# ----------------------------------------------------------------- extractive QA


def _answers(raw: Mapping) -> dict[str, list]:
  answers = raw.get("answers") or []
  if not isinstance(answers, list):
    raise kr.RowSkip("malformed answer")
  texts, starts = [], []
  for answer in answers:
    if not isinstance(answer, Mapping):
      raise kr.RowSkip("malformed answer")
    value, start = answer.get("text"), answer.get("answer_start")
    if not isinstance(value, str) or isinstance(start, bool) or not isinstance(start, int):
      raise kr.RowSkip("malformed answer")
    if value.strip():
      texts.append(value)
      starts.append(start)
  return {"text": texts, "answer_start": starts}


class _Squad(KoreanSource):
  def read(self, path):
    return kr.read_squad(path)

  def _common(self, raw):
    return {"title": str(raw.get("title") or "").strip(), "context": kr.text(raw, "context"),
            "question": kr.text(raw, "question")}


class KlueMrc(_Squad):
  """KLUE-MRC; unanswerable questions keep answers {"text": [], "answer_start": []}."""

  dataset = "klue_mrc"
  fields = ("title", "context", "question", "answers", "is_impossible")
  files = _klue_files("klue-mrc")
  how_to_get = _KLUE_HOW.format(name="klue-mrc",
                                url=f"{_KLUE_AISTAGES}/000072/data/klue-mrc-v1.1.tar.gz")

  def build(self, raw):
    row = self._common(raw)
    answers = _answers(raw)
    impossible = bool(raw.get("is_impossible", not answers["text"]))
    if impossible:
      answers = {"text": [], "answer_start": []}
    elif not answers["text"]:
      raise kr.RowSkip("no answer")
    return {**row, "answers": answers, "is_impossible": impossible}


class KorQuad(_Squad):
  dataset = "korquad"
  fields = ("title", "context", "question", "answers", "id")
  files = {"train": (("korquad/KorQuAD_v1.0_train.json",),),
           "validation": (("korquad/KorQuAD_v1.0_dev.json",),)}
  how_to_get = ("Get KorQuAD_v1.0_train.json and KorQuAD_v1.0_dev.json from "
                "https://korquad.github.io/KorQuad%201.0/ "
                "(https://korquad.github.io/dataset/KorQuAD_v1.0_train.json) and put them under "
                "<root>/korquad/.")

  def build(self, raw):
    row = self._common(raw)
    answers = _answers(raw)
    if not answers["text"]:
      raise kr.RowSkip("no answer")
    return {**row, "answers": answers, "id": str(kr.field(raw, "id"))}


# ------------------------------------------------------------------------- sentiment


class Nsmc(KoreanSource):
  dataset = "nsmc"
  fields = ("document", "label")
  files = {"train": (("nsmc/ratings_train.txt",),), "test": (("nsmc/ratings_test.txt",),)}
  how_to_get = ("Get ratings_train.txt and ratings_test.txt from https://github.com/e9t/nsmc "
                "and put them under <root>/nsmc/.")

  def read(self, path):
    return kr.read_delimited(path)

  def build(self, raw):
    return {"document": kr.text(raw, "document"), "label": kr.index_label(raw, "label", 2)}


# --------------------------------------------------------------------------- KoBEST

KOBEST_HF = "skt/kobest_v1"


@contextlib.contextmanager
def _hf_offline():
  """Offline mode for one cache lookup unless the user chose: HF_DATASETS_OFFLINE=1 and
  the flags that datasets / huggingface_hub parsed from the environment at import."""
  import datasets  # lazily (heavy); imported before the env changes so restore is exact
  import huggingface_hub.constants as hub_constants
  if os.environ.get("HF_DATASETS_OFFLINE") is not None:
    yield datasets
    return
  flags = [(mod, name, getattr(mod, name)) for mod, name in
           ((datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE"),
            (hub_constants, "HF_HUB_OFFLINE")) if hasattr(mod, name)]
  os.environ["HF_DATASETS_OFFLINE"] = "1"
  for mod, name, _ in flags:
    setattr(mod, name, True)
  try:
    yield datasets
  finally:
    os.environ.pop("HF_DATASETS_OFFLINE", None)
    for mod, name, value in flags:
      setattr(mod, name, value)


class KobestSource(KoreanSource):
  """One KoBEST subset: local JSONL `kobest/<subset>/<split>.jsonl`, else the HF cache."""

  subset: str = ""

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    cls.dataset = f"kobest_{cls.subset}"
    cls.files = {s: ((f"kobest/{cls.subset}/{s}.jsonl",),) for s in SPLITS}
    cls.how_to_get = (
        f"Either write the {KOBEST_HF} subset {cls.subset!r} as JSONL files "
        f"<root>/kobest/{cls.subset}/{{train,validation,test}}.jsonl (one object per line "
        f"with the Hugging Face field names; https://huggingface.co/datasets/{KOBEST_HF} has "
        f"them as {cls.subset}/<split>.jsonl), or cache it once with network access: "
        f"datasets.load_dataset({KOBEST_HF!r}, {cls.subset!r}).")

  def rows(self, split, stats):
    self.check_split(split)
    root = self._root
    if root is None and os.environ.get(ENV_VAR, "").strip():
      root = pathlib.Path(os.environ[ENV_VAR].strip()).expanduser()
    local = None if root is None else root / self.files[split][0][0]
    if local is not None and local.is_file():
      return self.rows_from([local], stats)
    return kr.emit(self._from_hf_cache(split, local), self.build, stats)

  def _from_hf_cache(self, split: str, local: pathlib.Path | None):
    expected = (f"{local} or " if local else f"${ENV_VAR}/{self.files[split][0][0]} or ")
    expected += f"the Hugging Face cache of {KOBEST_HF}/{self.subset} ({split})"
    try:
      with _hf_offline() as datasets:
        table = datasets.load_dataset(KOBEST_HF, self.subset, split=split)
    except ImportError as e:
      raise MissingDataError(self.dataset, expected, self.how_to_get) from e
    except Exception as e:  # noqa: BLE001 - any cache miss reads as "not there"
      raise MissingDataError(self.dataset, expected,
                             f"{self.how_to_get} (cache lookup: {type(e).__name__}: {e})") from e
    return iter(table)

  def read(self, path):
    return kr.read_jsonl(path)


_BOOL_NAMES = {"False": 0, "True": 1, "false": 0, "true": 1}


class KobestBoolq(KobestSource):
  subset = "boolq"
  fields = ("paragraph", "question", "label")

  def build(self, raw):
    return {"paragraph": kr.text(raw, "paragraph"), "question": kr.text(raw, "question"),
            "label": kr.index_label(raw, "label", 2, _BOOL_NAMES)}


class KobestCopa(KobestSource):
  subset = "copa"
  fields = ("premise", "question", "alternative_1", "alternative_2", "label")

  def build(self, raw):
    question = kr.text(raw, "question")
    if question not in COPA_QUESTIONS:
      raise kr.RowSkip(f"unknown question '{question}'")
    return {"premise": kr.text(raw, "premise"), "question": question,
            "alternative_1": kr.text(raw, "alternative_1"),
            "alternative_2": kr.text(raw, "alternative_2"),
            "label": kr.index_label(raw, "label", 2)}


class KobestWic(KobestSource):
  subset = "wic"
  fields = ("word", "context_1", "context_2", "label")

  def build(self, raw):
    return {"word": kr.text(raw, "word"), "context_1": kr.text(raw, "context_1"),
            "context_2": kr.text(raw, "context_2"),
            "label": kr.index_label(raw, "label", 2, _BOOL_NAMES)}


class KobestHellaswag(KobestSource):
  subset = "hellaswag"
  fields = ("context", "ending_1", "ending_2", "ending_3", "ending_4", "label")

  def build(self, raw):
    row = {name: kr.text(raw, name) for name in self.fields[:-1]}
    row["label"] = kr.index_label(raw, "label", 4)
    return row


class KobestSentineg(KobestSource):
  subset = "sentineg"
  fields = ("sentence", "label")

  def build(self, raw):
    return {"sentence": kr.text(raw, "sentence"),
            "label": kr.index_label(raw, "label", 2, {"negative": 0, "positive": 1})}


# -------------------------------------------------------------------------- catalogue

SOURCE_CLASSES: tuple[type[KoreanSource], ...] = (
    KlueNli, KorNli, KlueSts, KorSts, QuestionPair, Beep, Apeach, StyleKqc, KlueYnat,
    KlueMrc, KorQuad, Nsmc, KobestBoolq, KobestCopa, KobestWic, KobestHellaswag,
    KobestSentineg)


def korean_sources(root: str | os.PathLike | None = None) -> dict[str, KoreanSource]:
  """Every raw Korean source, keyed by dataset; `root` overrides XLT_KO_DATA_DIR."""
  return {cls.dataset: cls(root) for cls in SOURCE_CLASSES}


KOREAN_SOURCES: dict[str, Source] = korean_sources()
