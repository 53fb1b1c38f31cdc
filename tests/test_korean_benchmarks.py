"""KMMLU and KoBEST as rank-classification benchmarks, on files this test writes in the
upstream schemas (HAERAE-HUB/KMMLU CSVs, skt/kobest_v1 JSONL).

Expected prompts are spelled out here from the rows written, not produced by the code
under test.
"""
from __future__ import annotations

import collections
import csv
import json
import pathlib

import pytest
import seqio

from xlt.data import template_tasks
from xlt.data.sources import kmmlu
from xlt.data.sources.base import MissingDataError, RowStats

HEADER = ["question", "answer", "A", "B", "C", "D", "Category", "Human Accuracy"]
LETTERS = "ABCD"

# (question, answer 1-4, choices) of the Accounting dev file, in file order.
ACCOUNTING_DEV = [
    ("재무상태표에 표시되는 항목은?", 2, ("매출액", "현금", "판매비", "이자비용")),
    ("감가상각의 대상이 아닌 자산은?", 4, ("건물", "기계장치", "비품", "토지")),
    ("복식부기에서 차변과 대변의 합계는?", 1, ("항상 같다", "차변이 크다", "대변이 크다", "알 수 없다")),
    ("다음 중 유동자산은?", 3, ("특허권", "건물", "매출채권", "장기대여금")),
    ("손익계산서의 마지막 항목은?", 2, ("매출총이익", "당기순이익", "영업이익", "매출원가")),
]
# The test file: two good rows (one with a comma and a line break), then broken ones.
ACCOUNTING_TEST = [
    ("자본의 구성 요소가 아닌 것은?\n(단, 한국채택국제회계기준에 따른다)", 3,
     ("자본금", "이익잉여금", "미지급금", "자본잉여금")),
    ("선급비용은 어떤 계정에 속하는가?", 1, ("자산", "부채", "자본", "수익")),
    ("잘못된 정답 번호를 가진 문제", 5, ("가", "나", "다", "라")),
    ("정답이 비어 있는 문제", "", ("가", "나", "다", "라")),
    ("선택지가 빠진 문제", 2, ("가", "나", "", "라")),
    ("재무상태표에 표시되는 항목은?", 2, ("매출액", "현금", "판매비", "이자비용")),  # a dev row
]
MATH_DEV = [(f"{i} 더하기 {i}은?", 1 + i % 4, tuple(str(i * 2 + d) for d in range(4)))
            for i in range(1, 6)]
MATH_TEST = [("7 곱하기 3은?", 4, ("10", "14", "18", "21"))]

KOBEST_ROWS = {
    "boolq": {"paragraph": "한라산은 제주도에 있는 산이다.", "question": "한라산은 제주도에 있나?",
              "label": 1},
    "copa": {"premise": "밤새 눈이 많이 내렸다.", "question": "결과",
             "alternative_1": "길이 미끄러워졌다.", "alternative_2": "꽃이 피었다.", "label": 0},
    "hellaswag": {"context": "그는 냄비에 물을 붓고 불을 켰다.", "ending_1": "물이 끓기 시작했다.",
                  "ending_2": "냄비가 하늘을 날았다.", "ending_3": "불이 얼었다.",
                  "ending_4": "물이 책을 읽었다.", "label": 0},
    "sentineg": {"sentence": "이 영화는 지루하지 않았다.", "label": 1},
    "wic": {"word": "눈", "context_1": "눈이 내린다.", "context_2": "눈이 아프다.", "label": 0},
}


def write_kmmlu(folder: pathlib.Path, subject: str, split: str, rows) -> pathlib.Path:
  path = folder / "kmmlu" / "data" / f"{subject}-{split}.csv"
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(HEADER)
    for question, answer, choices in rows:
      writer.writerow([question, answer, *choices, subject, 0.5])
  return path


def block(question: str, choices, answer: int | None = None) -> str:
  """One question in the KMMLU prompt format, with its answer letter (exemplars) or not."""
  lines = [question] + [f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices)]
  lines.append("정답:" if answer is None else f"정답: {LETTERS[answer - 1]}")
  return "\n".join(lines)


@pytest.fixture(scope="module")
def registered():
  import tasks  # noqa: F401
  from tasks import korean_benchmarks
  return korean_benchmarks


@pytest.fixture
def kmmlu_root(tmp_path, monkeypatch, registered):
  write_kmmlu(tmp_path, "Accounting", "dev", ACCOUNTING_DEV)
  write_kmmlu(tmp_path, "Accounting", "test", ACCOUNTING_TEST)
  write_kmmlu(tmp_path, "Math", "dev", MATH_DEV)
  write_kmmlu(tmp_path, "Math", "test", MATH_TEST)
  monkeypatch.setenv(kmmlu.ENV_VAR, str(tmp_path))
  monkeypatch.delenv("XLT_KO_DATA_DIR", raising=False)
  return tmp_path


def raw_examples(task_name: str, split: str = "test") -> list[dict]:
  """The task's examples before tokenization (no vocabulary needed)."""
  ds = seqio.get_mixture_or_task(task_name).source.get_dataset(split=split, shuffle=False)
  return list(ds.as_numpy_iterator())


# ------------------------------------------------------------------------------ KMMLU


def test_five_shot_prompt_is_the_dev_rows_in_order_then_the_question(kmmlu_root):
  rows = list(template_tasks.RENDERERS["kmmlu_accounting"]("test"))
  assert len(rows) == 2
  exemplars = "\n\n".join(block(q, c, a) for q, a, c in ACCOUNTING_DEV)
  for row, (question, answer, choices) in zip(rows, ACCOUNTING_TEST):
    assert row["inputs"] == exemplars + "\n\n" + block(question, choices)
    assert row["inputs"].count("정답:") == 6 and row["inputs"].endswith("\n정답:")
    assert row["targets"] == LETTERS[answer - 1]
    assert row["answer_choices"] == list(LETTERS)
  # The subject's own dev rows only: nothing of Math leaks into Accounting.
  assert all(q not in rows[0]["inputs"] for q, _, _ in MATH_DEV)


def test_zero_shot_is_the_question_alone_and_needs_no_dev_file(kmmlu_root):
  (kmmlu_root / "kmmlu" / "data" / "Math-dev.csv").unlink()
  (row,) = template_tasks.RENDERERS["kmmlu_math__0shot"]("test")
  question, answer, choices = MATH_TEST[0]
  assert row["inputs"] == block(question, choices)
  assert row["targets"] == LETTERS[answer - 1]
  with pytest.raises(MissingDataError, match="Math-dev.csv"):
    list(template_tasks.RENDERERS["kmmlu_math"]("test"))


def test_score_eval_has_four_letters_per_question_one_correct(kmmlu_root):
  examples = raw_examples("kmmlu_accounting_score_eval")
  by_question = collections.defaultdict(list)
  for ex in examples:
    by_question[int(ex["idx"][0])].append(ex)
  assert sorted(by_question) == [0, 1]
  for i, (_, answer, _) in enumerate(ACCOUNTING_TEST[:2]):
    group = sorted(by_question[i], key=lambda ex: int(ex["idx"][1]))
    assert [ex["targets"].decode() for ex in group] == list(LETTERS)
    assert len({ex["inputs"] for ex in group}) == 1
    correct = [ex["targets"].decode() for ex in group if ex["is_correct"]]
    assert correct == [LETTERS[answer - 1]]


def test_bad_rows_are_skipped_and_counted_with_file_and_row(kmmlu_root):
  list(template_tasks.RENDERERS["kmmlu_accounting"]("test"))
  stats = template_tasks.STATS[("kmmlu_accounting", "test")]
  assert (stats.read, stats.kept) == (6, 2)
  assert dict(stats.skipped) == {
      "Accounting-test.csv row 3: answer '5' is not 1-4": 1,
      "Accounting-test.csv row 4: answer '' is not 1-4": 1,
      "Accounting-test.csv row 5: missing choice C": 1,
      "Accounting-test.csv row 6: question is one of its own 5-shot exemplars": 1,
  }


def test_too_few_usable_dev_rows_is_an_error_naming_the_file(kmmlu_root):
  broken = [*ACCOUNTING_DEV[:4], ("정답 번호가 0인 예시", 0, ("가", "나", "다", "라"))]
  path = write_kmmlu(kmmlu_root, "Accounting", "dev", broken)
  with pytest.raises(ValueError, match="needs 5 exemplars") as info:
    list(template_tasks.RENDERERS["kmmlu_accounting"]("test"))
  assert str(path) in str(info.value) and "row 5: answer '0' is not 1-4" in str(info.value)


def test_missing_data_names_the_expected_path(tmp_path, monkeypatch, registered):
  monkeypatch.setenv(kmmlu.ENV_VAR, str(tmp_path))
  with pytest.raises(MissingDataError) as info:
    list(template_tasks.RENDERERS["kmmlu_korean_history"]("test"))
  message = str(info.value)
  assert str(tmp_path / "kmmlu" / "data" / "Korean-History-test.csv") in message
  assert "hf download HAERAE-HUB/KMMLU --repo-type dataset" in message
  monkeypatch.delenv(kmmlu.ENV_VAR)
  monkeypatch.delenv("XLT_KO_DATA_DIR", raising=False)
  with pytest.raises(MissingDataError, match=r"\$XLT_KMMLU_DIR/kmmlu/data/Law-test.csv"):
    kmmlu.KmmluSource("Law").rows("test", RowStats())


def test_root_falls_back_to_ko_data_dir_and_file_names_match_loosely(tmp_path, monkeypatch):
  monkeypatch.delenv(kmmlu.ENV_VAR, raising=False)
  monkeypatch.setenv("XLT_KO_DATA_DIR", str(tmp_path))
  # Upstream once named this subject's files korean_history-*.csv / korean-history-*.csv.
  write_kmmlu(tmp_path, "Korean-History", "dev", MATH_DEV)
  (tmp_path / "kmmlu/data/Korean-History-dev.csv").rename(
      tmp_path / "kmmlu/data/korean_history-dev.csv")
  write_kmmlu(tmp_path, "Korean-History", "test", MATH_TEST)
  (tmp_path / "kmmlu/data/Korean-History-test.csv").rename(
      tmp_path / "kmmlu/data/korean-history-test.csv")
  stats = RowStats()
  (row,) = kmmlu.KmmluSource("Korean-History").rows("test", stats)
  assert row["answer"] == 3 and [ex["question"] for ex in row["exemplars"]] == \
      [q for q, _, _ in MATH_DEV]
  assert set(row) == set(kmmlu.KmmluSource.fields)


def test_source_arguments_are_checked():
  with pytest.raises(ValueError, match="unknown KMMLU subject 'Astrology'"):
    kmmlu.KmmluSource("Astrology")
  with pytest.raises(ValueError, match="k_shot must be 0-5"):
    kmmlu.KmmluSource("Law", k_shot=6)


def test_supercategory_table_has_45_subjects_in_4_groups():
  assert len(kmmlu.SUBJECTS) == 45
  counts = collections.Counter(kmmlu.SUBJECTS.values())
  assert set(counts) == set(kmmlu.SUPERCATEGORIES)
  assert counts == {"stem": 11, "applied_science": 12, "humss": 11, "other": 11}
  assert len({kmmlu.subject_slug(s) for s in kmmlu.SUBJECTS}) == 45


def test_kmmlu_mixtures_one_task_per_subject(registered):
  names = {t.name for t in seqio.get_mixture_or_task("kmmlu").tasks}
  assert names == {f"kmmlu_{kmmlu.subject_slug(s)}_score_eval" for s in kmmlu.SUBJECTS}
  zero = {t.name for t in seqio.get_mixture_or_task("kmmlu_0shot").tasks}
  assert zero == {f"kmmlu_{kmmlu.subject_slug(s)}__0shot_score_eval" for s in kmmlu.SUBJECTS}
  parts = [{t.name for t in seqio.get_mixture_or_task(f"kmmlu_{c}").tasks}
           for c in kmmlu.SUPERCATEGORIES]
  assert sum(len(p) for p in parts) == 45 and set().union(*parts) == names
  info = template_tasks.TASKS["kmmlu_korean_history_score_eval"]
  assert (info.cluster, info.dataset, info.purpose) == \
      ("kmmlu_humss", "kmmlu/Korean-History", "eval")
  # KMMLU's evaluation split is `test`; dev only supplies exemplars.
  assert seqio.get_mixture_or_task("kmmlu_law").splits == ("test", "train")


# ----------------------------------------------------------------------------- KoBEST


@pytest.fixture
def kobest_root(tmp_path, monkeypatch, registered):
  for subset, row in KOBEST_ROWS.items():
    path = tmp_path / "kobest" / subset / "test.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
  monkeypatch.setenv("XLT_KO_DATA_DIR", str(tmp_path))
  return tmp_path


def test_kobest_mixture_has_the_five_subsets(registered):
  names = sorted(t.name for t in seqio.get_mixture_or_task("kobest").tasks)
  assert names == [f"kobest_{s}_score_eval" for s in sorted(KOBEST_ROWS)]


def test_kobest_prompts_and_choices(kobest_root):
  expected = {
      "boolq": ("한라산은 제주도에 있는 산이다. 질문: 한라산은 제주도에 있나? 답변:", ["아니오", "예"], "예"),
      "copa": ("밤새 눈이 많이 내렸다. 그래서", ["길이 미끄러워졌다.", "꽃이 피었다."],
               "길이 미끄러워졌다."),
      "hellaswag": ("문장: 그는 냄비에 물을 붓고 불을 켰다.",
                    ["물이 끓기 시작했다.", "냄비가 하늘을 날았다.", "불이 얼었다.", "물이 책을 읽었다."],
                    "물이 끓기 시작했다."),
      "sentineg": ("문장: 이 영화는 지루하지 않았다. 긍부정:", ["부정", "긍정"], "긍정"),
      "wic": ("문장1: 눈이 내린다. 문장2: 눈이 아프다. 두 문장에서 눈가 같은 뜻으로 쓰였나?",
              ["아니오", "예"], "아니오"),
  }
  for subset, (inputs, choices, target) in expected.items():
    (row,) = template_tasks.RENDERERS[f"kobest_{subset}"]("test")
    assert (row["inputs"], row["answer_choices"], row["targets"]) == (inputs, choices, target)
  scored = raw_examples("kobest_copa_score_eval")
  assert [(ex["targets"].decode(), bool(ex["is_correct"])) for ex in scored] == \
      [("길이 미끄러워졌다.", True), ("꽃이 피었다.", False)]


def test_benchmark_prompts_stay_out_of_training_and_the_grid(registered):
  from tasks import korean, template_store
  bench = str(registered.BENCHMARK_TEMPLATES_DIR)
  assert all(not t.origin.startswith(bench) for t in template_store.team_templates())
  assert {t.origin for t in registered.benchmark_templates()} == \
      {str(p) for p in pathlib.Path(bench).glob("*.yaml")}
  # ko_train is exactly the plain tasks of tasks/korean.py, none with a benchmark prompt.
  ko_train = {t.name for t in seqio.get_mixture_or_task("ko_train").tasks}
  assert ko_train == {n for names in korean.TRAIN_TASKS.values() for n in names}
  grid = [m for m in seqio.MixtureRegistry.names()
          if m.startswith(("xlt_", "mono_", "ko_"))]
  for mixture in grid:
    for task in seqio.get_mixture_or_task(mixture).tasks:
      template = template_tasks.TASKS[task.name].template
      assert template is None or not template.origin.startswith(bench), (mixture, task.name)
