"""INSTA selection: aggregation on hand-built tables, instruction text, rankings of the real
promptsource templates, the embedding cache, and the selections as SeqIO mixtures."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, subprocess_env
from xlt.data.templates import Template
from xlt.insta import aggregate, cache, instructions
from xlt.insta import selection as sel

# ------------------------------------------------------------------ aggregation


def test_mean_max_vote_on_a_hand_built_table():
  # Two target instructions x four candidates; dataset 0 owns candidates 0-2, dataset 1
  # owns candidate 3: one excellent template against three mediocre ones.
  similarity = np.array([[0.5, 0.4, 0.3, 0.9],
                         [0.6, 0.5, 0.4, 0.2]])
  owners = [0, 0, 0, 1]
  mean = aggregate.dataset_scores(similarity, owners, 2, "mean")
  np.testing.assert_allclose(mean, [(0.5 + 0.4 + 0.3 + 0.6 + 0.5 + 0.4) / 6, (0.9 + 0.2) / 2])
  np.testing.assert_allclose(aggregate.dataset_scores(similarity, owners, 2, "max"), [0.6, 0.9])
  # Vote, top 2, rank weights 2 : 1 (sum 1): target 0 ranks c3 (dataset 1) then c0
  # (dataset 0): 2/3 to d1, 1/3 to d0; target 1 ranks c0 then c1, both dataset 0: 1.
  # Averaged over the 2 targets.
  vote = aggregate.dataset_scores(similarity, owners, 2, "vote", top=2)
  np.testing.assert_allclose(vote, [(1 / 3 + 1) / 2, (2 / 3) / 2])


def test_vote_with_the_papers_top_10_and_fewer_candidates():
  # 3 candidates < 10: the first three get weights 10 : 9 : 8, out of 27.
  similarity = np.array([[0.1, 0.3, 0.2]])
  vote = aggregate.dataset_scores(similarity, [0, 1, 2], 3, "vote")
  np.testing.assert_allclose(vote, [8 / 27, 10 / 27, 9 / 27])


def test_ranking_breaks_ties_by_mean_then_name():
  scores = np.array([1.0, 1.0, 1.0, 2.0])
  means = np.array([0.2, 0.5, 0.2, 0.0])
  assert aggregate.ranking(scores, means, ["b", "c", "a", "d"]) == [3, 1, 2, 0]


def test_aggregate_rejects_bad_input():
  with pytest.raises(ValueError, match="aggregate must be one of"):
    aggregate.dataset_scores(np.zeros((1, 2)), [0, 1], 2, "median")
  with pytest.raises(ValueError, match="disagree"):
    aggregate.dataset_scores(np.zeros((1, 2)), [0], 2, "mean")
  with pytest.raises(ValueError, match="no instructions"):
    aggregate.dataset_scores(np.zeros((0, 2)), [0, 1], 2, "vote")


# --------------------------------------------------------------- instruction text


def test_instruction_text_of_a_promptsource_template():
  template = Template(
      name="mnli_crowdsource", dataset="super_glue/rte", language="en", style="p3",
      jinja='{{premise}} Using only the above description, is "{{hypothesis}}" definitely '
            'correct? Yes or no? ||| {% if label != -1 %}{{ answer_choices[label] }}{% endif %}',
      answer_choices="Yes ||| No")
  assert instructions.instruction_text(template) == (
      'premise Using only the above description, is "hypothesis" definitely correct? '
      "Yes or no?")


def test_instruction_text_drops_statements_and_keeps_field_names():
  text = instructions.jinja_to_instruction(
      "{# a comment #}{% if title %}Title: {{title}}{% endif %}\n\n  Options: "
      "{{ answer_choices | join(', ') }}{{a}}{{b}}. 전제: {{ premise }}")
  assert text == "Title: title\nOptions: answer choices a b. 전제: premise"


# --------------------------------------------------- rankings of real templates


@pytest.fixture(scope="module")
def encoder():
  from xlt.insta.encoder import SentenceEncoder
  return SentenceEncoder.load(None)


def _promptsource_pool(shared_data, keys_and_clusters):
  from xlt.data import promptsource
  folder = shared_data / "promptsource" / "templates"
  return sel.pool_from_templates("test_pool", {
      key: (cluster, promptsource.load_key(key, folder)) for key, cluster in keys_and_clusters})


@pytest.mark.parametrize("how", ["vote", "mean", "max"])
def test_rte_ranks_a_sibling_dataset_first(shared_data, encoder, tmp_path, how):
  """RTE's templates against a pool holding glue/rte and anli (NLI, like RTE) and datasets
  of other clusters: the first choice is one of the siblings, by every aggregate."""
  from xlt.data import promptsource
  folder = shared_data / "promptsource" / "templates"
  rte = promptsource.load_key("super_glue/rte", folder)
  target = sel.Target("super_glue/rte", "super_glue_rte",
                      tuple(instructions.instructions_of(rte)), "super_glue/rte", "nli", "en")
  pool = _promptsource_pool(shared_data, [
      ("glue/rte", "nli"), ("anli", "nli"), ("glue/mrpc", "paraphrase_identification"),
      ("imdb", "sentiment"), ("ag_news", "topic_classification"),
      ("cnn_dailymail/3.0.0", "summarization"), ("xsum", "summarization"),
      ("super_glue/copa", "sentence_completion"), ("common_gen", "structure_to_text")])
  selection = sel.select(target, pool, encoder, k=3, aggregate=how, cache_dir=tmp_path)
  assert selection.ranking[0].dataset in {"glue/rte", "anli"}, selection.table()
  assert {r.dataset for r in selection.ranking} == {c.dataset for c in pool.candidates}
  assert len(target.instructions) == 10


def test_selection_is_deterministic_and_cached(shared_data, encoder, tmp_path):
  """The second run embeds nothing and ranks the same; a corrupt cache file is redone."""
  pool = _promptsource_pool(shared_data, [("glue/rte", "nli"), ("imdb", "sentiment"),
                                          ("xsum", "summarization")])
  target = sel.free_text_target("Does the premise entail the hypothesis? Yes or no?")
  calls = []

  class CountingEncoder:  # the real encoder, with its embed calls counted
    name, encoder_id, config = encoder.name, encoder.encoder_id, encoder.config

    def embed(self, texts, **kwargs):
      calls.append(len(texts))
      return encoder.embed(texts, **kwargs)

  first = sel.select(target, pool, CountingEncoder(), k=1, cache_dir=tmp_path)
  n_texts = 1 + sum(len(c.instructions) for c in pool.candidates)
  assert sum(calls) == n_texts
  files = sorted((tmp_path / encoder.encoder_id).rglob("*.npy"))
  assert len(files) == n_texts
  second = sel.select(target, pool, CountingEncoder(), k=1, cache_dir=tmp_path)
  assert sum(calls) == n_texts  # nothing embedded again
  assert [r.dataset for r in second.ranking] == [r.dataset for r in first.ranking]
  assert [r.score for r in second.ranking] == [r.score for r in first.ranking]
  files[0].write_bytes(b"not an array")
  sel.select(target, pool, CountingEncoder(), k=1, cache_dir=tmp_path)
  assert calls[-1] == 1
  assert first.ranking[0].dataset == "glue/rte"


def test_embedding_cache_rejects_a_vector_of_the_wrong_shape(tmp_path):
  store = cache.EmbeddingCache("enc", tmp_path)
  store.put("hello world", np.ones(3, np.float32))
  assert store.get("hello world", 3) is not None
  assert store.get("hello world", 4) is None
  assert cache.EmbeddingCache("enc", None).get("hello world", 3) is None


# --------------------------------------------------- mixtures, store and CLI


DEMO_TARGET, DEMO_POOL = "demo_en_next_number", "demo_mix"
DEMO_NAME = "insta/demo_en_next_number/demo_mix/top2"


@pytest.fixture
def store(tmp_path, monkeypatch):
  monkeypatch.setenv("XLT_INSTA_DIR", str(tmp_path / "selections"))
  monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "cache"))
  return tmp_path / "selections"


def test_selection_becomes_a_mixture_with_the_pools_tasks_and_rates(encoder, store):
  import seqio
  target = sel.resolve_target(DEMO_TARGET)
  assert target.dataset == DEMO_TARGET and target.cluster == "sentence_completion"
  assert {i.template for i in target.instructions} == {"what_comes_next", "continue_sequence"}
  pool = sel.resolve_pool(DEMO_POOL, exclude=target.dataset)
  selection = sel.select(target, pool, encoder, k=2)
  assert selection.name == DEMO_NAME
  sel.register(selection)
  mixture = seqio.get_mixture_or_task(DEMO_NAME)
  pool_mixture = seqio.get_mixture_or_task(DEMO_POOL)
  chosen = {r.dataset for r in selection.selected}
  from xlt.data import template_tasks
  expected = {t.name for t in pool_mixture.tasks
              if template_tasks.TASKS[t.name].dataset in chosen}
  assert {t.name for t in mixture.tasks} == expected
  assert all(mixture.get_rate(t) == pool_mixture.get_rate(t) for t in mixture.tasks)
  # JSON round trip through the store.
  path = sel.save(selection)
  assert path.parent == store
  assert sel.read_json(path) == selection


def test_stored_selection_with_unknown_tasks_is_refused_with_its_file(store, encoder):
  target = sel.resolve_target(DEMO_TARGET)
  selection = sel.select(target, sel.resolve_pool(DEMO_POOL, exclude=target.dataset),
                         encoder, k=1)
  data = selection.to_json()
  data["tasks"] = [["p3_no_such_task__x", 1.0]]
  path = store / "bad.json"
  store.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(data))
  with pytest.raises(sel.SelectionError, match=r"bad\.json.*p3_no_such_task__x"):
    sel.register(sel.read_json(path), str(path))
  path.write_text("{\"format\": \"something else\"}")
  with pytest.raises(sel.SelectionError, match="not an xlt INSTA selection"):
    sel.read_json(path)


def test_store_may_be_a_run_folder_with_other_json(store, encoder, monkeypatch):
  """XLT_INSTA_DIR pointed at a run folder: its selection registers, other JSON is skipped."""
  import seqio
  target = sel.resolve_target(DEMO_TARGET)
  selection = sel.select(target, sel.resolve_pool(DEMO_POOL, exclude=target.dataset),
                         encoder, k=1)
  run = store.parent / "run"
  run.mkdir()
  sel.write_json(selection, run / sel.BESIDE_RUN)
  (run / "results.json").write_text(json.dumps([{"step": 3, "accuracy": 0.5}]))
  (run / "metrics.json").write_text(json.dumps({"loss": 1.0}))
  (run / "broken.json").write_text("{")
  seqio.MixtureRegistry.remove(selection.name)
  monkeypatch.setenv("XLT_INSTA_DIR", str(run))
  assert sel.register_stored() == [selection.name]
  assert {t.name for t in seqio.get_mixture_or_task(selection.name).tasks} == {
      name for name, _ in selection.tasks}


def test_target_and_pool_errors_say_what_is_wrong():
  with pytest.raises(sel.SelectionError, match="Did you mean: demo_en_next_number"):
    sel.resolve_target("demo_en_next_numbr")
  with pytest.raises(sel.SelectionError, match="--pool: unknown task or mixture"):
    sel.resolve_pool("no_such_pool")
  with pytest.raises(sel.SelectionError, match="not an INSTA mixture name"):
    sel.resolve_mixture("insta/a/b")
  assert sel.resolve_target("Translate this sentence into Korean.").slug.startswith("text_")


def _xlt(args, env, timeout=600):
  return subprocess.run([sys.executable, "-m", "xlt", *args], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_cli_select_then_train_on_the_mixture(tmp_path, monkeypatch, capsys):
  """`xlt select` prints the ranking and saves the mixture; train() on its name trains for
  a few steps on CPU (in this process: the mixture is re-registered from the store) and
  keeps the selection beside the run."""
  env = subprocess_env(XLT_INSTA_DIR=str(tmp_path / "selections"),
                       XLT_CACHE_DIR=str(tmp_path / "cache"))
  proc = _xlt(["select", "--target", DEMO_TARGET, "--pool", DEMO_POOL, "--k", "2"], env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert DEMO_NAME in proc.stdout and "*   1" in proc.stdout
  stored = tmp_path / "selections" / "demo_en_next_number__demo_mix__top2.json"
  selection = sel.read_json(stored)
  # Unknown names fail with the reason, not a traceback (the same command, in process).
  from xlt import cli
  monkeypatch.setenv("XLT_INSTA_DIR", str(tmp_path / "selections"))
  monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "cache"))
  assert cli.main(["select", "--target", "nope", "--pool", DEMO_POOL]) == 2
  assert "neither a registered task" in capsys.readouterr().err
  assert cli.main(["select", "--target", DEMO_TARGET, "--pool", DEMO_POOL, "--k", "9"]) == 2
  assert "has only" in capsys.readouterr().err

  import seqio

  from xlt import checkpoints, partitioning, trainer
  from xlt.data import DataConfig
  from xlt.models import TINY
  if DEMO_NAME in seqio.MixtureRegistry.names():  # another test registered its own
    seqio.MixtureRegistry.remove(DEMO_NAME)
  model_dir = tmp_path / "run"
  result = trainer.train(
      model_dir=str(model_dir), model=TINY,
      data=DataConfig(DEMO_NAME, {"inputs": 64, "targets": 16}, batch_size=8,
                      vocabulary="byte"),
      train_steps=3, mesh=partitioning.MeshConfig(data=1, fsdp=-1, model=1),
      checkpoint=checkpoints.CheckpointConfig(async_save=False), progress_bar=False)
  assert result.final_step == 3 and np.isfinite(result.last_metrics["loss"])
  assert sel.read_json(model_dir / sel.BESIDE_RUN) == selection
  assert (model_dir / "checkpoints").is_dir()


def test_unsaved_default_selection_is_made_when_first_requested(tmp_path):
  """A fresh process with an empty store: the registry selects the mixture by its name."""
  env = subprocess_env(XLT_INSTA_DIR=str(tmp_path / "selections"),
                       XLT_CACHE_DIR=str(tmp_path / "cache"))
  code = ("from xlt.data.registry import get_task_or_mixture as get\n"
          f"m = get({DEMO_NAME!r}); print(sorted(t.name for t in m.tasks))\n"
          "try:\n  get('insta/text_0123abcd/demo_mix/top2')\n"
          "except Exception as e: print('ERR', e)\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (tmp_path / "selections" / "demo_en_next_number__demo_mix__top2.json").is_file()
  assert "ERR INSTA mixture 'insta/text_0123abcd/demo_mix/top2'" in proc.stdout
  assert "demo_" in proc.stdout.splitlines()[0]


def test_spearman_of_two_rankings():
  from xlt.insta.report import spearman
  assert spearman(list("abcd"), list("abcd")) == 1.0
  assert spearman(list("abcd"), list("dcba")) == -1.0
  # One adjacent swap of 4: sum d^2 = 2, rho = 1 - 6 * 2 / (4 * 15) = 0.8.
  assert spearman(list("abcd"), list("bacd")) == pytest.approx(0.8)
  with pytest.raises(ValueError, match="different datasets"):
    spearman(list("ab"), list("ac"))


def test_report_compares_two_encoders_per_target(encoder, store):
  from xlt.insta import report
  # A perturbed copy of the encoder stands in for an aligned one (same interface).
  rng = np.random.default_rng(0)
  other = encoder.with_params({k: v + 0.05 * rng.standard_normal(v.shape).astype(np.float32)
                               for k, v in encoder.params.items()})
  other._id = "f" * 16
  reports = report.build(DEMO_POOL, [DEMO_TARGET, "demo_ko_next_number"], encoder, other,
                         "aligned:/x", k=2)
  assert [r.target for r in reports] == [DEMO_TARGET, "demo_ko_next_number"]
  for r in reports:
    entered, left, rho = r.changes()
    base = {d.dataset for d in r.base.selected}
    aligned = {d.dataset for d in r.aligned.selected}
    assert set(entered) == aligned - base and set(left) == base - aligned
    assert -1.0 <= rho <= 1.0
  text = report.markdown(reports, DEMO_POOL)
  assert text.count("\n| demo_") == 2 and "Spearman" in text
  assert "Targets whose own cluster is in the pool: 0 of 2." in text  # demo_mix: none held out
