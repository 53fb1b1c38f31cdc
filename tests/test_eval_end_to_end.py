"""End to end on CPU: a tiny model trained a few steps with `xlt train`, then `xlt eval`
on a mixture of one scored task, one generated task and one whose data is missing, at two
checkpoints, and `xlt report` on the two evaluations."""
import json

import matplotlib.image
import numpy as np
import pytest
import seqio

from xlt import checkpoints, cli, decoding, eval_results, evaluation, metrics
from xlt.data import DataConfig, template_tasks, vocabulary
from xlt.loaded_model import load_model
from xlt.models import T5Config, Transformer

SCORED = "demo_en_next_number__continue_sequence_score_eval"
GENERATED = "demo_en_addition__what_is"
MISSING = "ko_beep__hate_level_options"   # reads $XLT_KO_DATA_DIR/beep/dev.tsv
MIXTURE = "test_e2e_eval_mix"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  import tasks  # noqa: F401  (registers the demo and Korean tasks)
  template_tasks.add_mixture(MIXTURE, [SCORED, GENERATED, MISSING])
  model_dir = tmp_path_factory.mktemp("e2e") / "run"
  code = cli.main(["train", "--gin_file=gin/experiments/demo.gin",
                   f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=20",
                   "--gin.CheckpointConfig.save_every_steps=10", "--gin.BATCH_SIZE=16",
                   "--gin.train.log_every_steps=10", "--gin.Schedule.warmup_steps=5"])
  assert code == 0
  return model_dir


def _out_dir(run, step):
  """The folder of the (greedy, default settings) evaluation of MIXTURE at `step`."""
  found = list((run / "eval").glob(f"{MIXTURE}-validation-step{step}-greedy-*"))
  return found[0] if found else run / "eval" / "missing"


def _eval(checkpoint, monkeypatch, tmp_path_factory):
  monkeypatch.setenv("XLT_KO_DATA_DIR", str(tmp_path_factory.mktemp("no_korean_data")))
  return cli.main(["eval", "--gin_file=gin/runs/eval.gin", f"--gin.CHECKPOINT_PATH='{checkpoint}'",
                   f"--gin.MIXTURE_OR_TASK_NAME='{MIXTURE}'", "--gin.VOCABULARY='byte'",
                   "--gin.BATCH_SIZE=64",
                   "--gin.TASK_FEATURE_LENGTHS={'inputs': 128, 'targets': 16}"])


def test_eval_scores_decodes_and_skips(run, monkeypatch, tmp_path_factory, capsys):
  assert _eval(run, monkeypatch, tmp_path_factory) == 0
  printed = capsys.readouterr().out
  out_dir = _out_dir(run, 20)
  results = json.loads((out_dir / "results.json").read_text())
  assert results["step"] == 20 and set(results["tasks"]) == {SCORED, GENERATED}
  assert "MissingDataError" in results["skipped"][MISSING] and "beep/dev.tsv" in \
      results["skipped"][MISSING]
  assert MISSING in printed and "skipped" in printed

  scored = results["tasks"][SCORED]
  assert scored["evaluator"] == "rank_classification" and scored["primary_metric"] == "accuracy"
  assert scored["cluster"] == "sentence_completion" and scored["template"] == "continue_sequence"
  assert scored["metrics"]["examples"] == 200 and scored["metrics"]["choices_per_example"] > 1

  generated = results["tasks"][GENERATED]
  assert generated["evaluator"] == "generation"
  # The predictions written beside the results give back exactly the reported metric.
  rows = [json.loads(line) for line in (out_dir / "predictions" / f"{GENERATED}.jsonl").open()]
  assert len(rows) == generated["metrics"]["examples"] == 200
  em = metrics.exact_match([r["targets"] for r in rows], [r["prediction"] for r in rows])
  assert generated["metrics"]["exact_match"] == pytest.approx(em)

  assert "## Per cluster" in (out_dir / "results.md").read_text()
  assert matplotlib.image.imread(out_dir / "results.png").ndim == 3


def test_rank_classification_matches_direct_argmax(run, monkeypatch, tmp_path_factory):
  """The reported accuracy equals an independent argmax over per-choice log-probs."""
  if not (_out_dir(run, 20) / "results.json").exists():
    assert _eval(run, monkeypatch, tmp_path_factory) == 0
  out_dir = _out_dir(run, 20)
  reported = json.loads((out_dir / "results.json").read_text())["tasks"][SCORED]["metrics"]
  model = Transformer(T5Config(**checkpoints.read_model_config(str(run))))
  params = load_model(str(run)).params
  vocabulary.set_vocabulary(vocabulary.BYTE)
  task = seqio.get_mixture_or_task(SCORED)
  rows = list(task.get_dataset(sequence_length={"inputs": 128, "targets": 16},
                               split="validation", shuffle=False).as_numpy_iterator())
  # Right-padding changes nothing: padded inputs are masked, the decoder is causal.
  enc = np.zeros((len(rows), 128), np.int32)
  dec = np.zeros((len(rows), 16), np.int32)
  for i, row in enumerate(rows):
    enc[i, :len(row["inputs"])] = row["inputs"]
    dec[i, 1:len(row["targets"])] = row["targets"][:-1]
  logits = np.asarray(model.apply({"params": params}, enc, dec), np.float64)
  logits -= logits.max(-1, keepdims=True)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  best, gold = {}, {}
  for i, row in enumerate(rows):
    t = row["targets"].astype(np.int32)
    score = logp[i, np.arange(len(t)), t].sum()
    example, choice = (int(v) for v in row["idx"])
    if example not in best or score > best[example][0]:
      best[example] = (score, choice)
    if row["is_correct"]:
      gold[example] = choice
  accuracy = 100 * np.mean([best[e][1] == gold[e] for e in gold])
  assert reported["accuracy"] == pytest.approx(accuracy)


def test_report_compares_two_checkpoints(run, monkeypatch, tmp_path_factory, capsys):
  assert _eval(run / "checkpoints" / "10", monkeypatch, tmp_path_factory) == 0
  if not (_out_dir(run, 20) / "results.json").exists():
    assert _eval(run, monkeypatch, tmp_path_factory) == 0
  capsys.readouterr()
  first, second = _out_dir(run, 10), _out_dir(run, 20)
  out = run / "report"
  assert cli.main(["report", str(first), str(second), "--names", "step10,step20",
                   "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  a, b = (eval_results.load(str(p)) for p in (first, second))
  expected = (b["clusters"]["sentence_completion"]["mean"]
              - a["clusters"]["sentence_completion"]["mean"])
  assert f"({expected:+.2f})" in printed
  assert matplotlib.image.imread(out / "report.png").ndim == 3
  # A run directory with two evaluations is ambiguous, and says which to pick.
  assert cli.main(["report", str(run)]) == 2
  assert "2 evaluations" in capsys.readouterr().err


def test_default_output_dir_is_per_mixture_split_step_and_settings():
  data = DataConfig("m", None, split="test", num_epochs=1)
  greedy = evaluation.result_settings(data, decoding.DecodeConfig(), evaluators=None,
                                      length_normalize=False, model=None)
  key = eval_results.settings_hash(greedy)
  assert evaluation.default_output_dir("/r/run/checkpoints/30", "m", "test", 30, greedy) == \
      f"/r/run/eval/m-test-step30-greedy-{key}"
  assert evaluation.default_output_dir("/r/run", "a/b", "validation", 7, greedy) == \
      f"/r/run/eval/a_b-validation-step7-greedy-{key}"
  # Options the method does not use change nothing; the ones it uses, and lengths, do.
  unused = evaluation.result_settings(data, decoding.DecodeConfig(num_beams=8),
                                      evaluators=None, length_normalize=False, model=None)
  assert eval_results.settings_hash(unused) == key
  beams = [evaluation.result_settings(data, decoding.DecodeConfig("beam", num_beams=n),
                                      evaluators=None, length_normalize=False, model=None)
           for n in (2, 4)]
  capped = evaluation.result_settings(
      DataConfig("m", {"inputs": 64, "targets": 8}, split="test", num_epochs=1),
      decoding.DecodeConfig(), evaluators=None, length_normalize=False, model=None)
  assert len({key, *(eval_results.settings_hash(s) for s in beams + [capped])}) == 4


def test_eval_lengths_round_up_and_cap():
  assert evaluation.eval_lengths({"inputs": 100, "targets": 3}, None) == {"inputs": 128,
                                                                         "targets": 8}
  assert evaluation.eval_lengths({"inputs": 900, "targets": 9},
                                 {"inputs": 768, "targets": 256}) == {"inputs": 768,
                                                                      "targets": 16}
