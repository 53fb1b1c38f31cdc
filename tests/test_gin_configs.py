"""Every gin file parses with the tiny overlay and yields valid, complete arguments."""
import inspect
import pathlib

import gin
import jax
import pytest

from xlt import evaluation, gin_config, inference, trainer
from xlt.models import LlamaConfig, T5Config
from xlt.train_state import boxed_params

GIN_DIR = pathlib.Path(__file__).resolve().parents[1] / "gin"
ALL_FILES = sorted(str(p.relative_to(GIN_DIR.parent)) for p in GIN_DIR.rglob("*.gin"))
ENTRIES = {"train": trainer.train, "evaluate": evaluation.evaluate, "infer": inference.infer}
# What a user passes on the command line for the macros a run must choose.
REQUIRED = {
    "MODEL_DIR": "'/tmp/xlt_gin_test'", "MIXTURE_OR_TASK_NAME": "'demo_mix'",
    "TASK_FEATURE_LENGTHS": "{'inputs': 32, 'targets': 8}", "TRAIN_STEPS": "10",
    "INITIAL_CHECKPOINT_PATH": "'/tmp/ckpt'", "CHECKPOINT_PATH": "'/tmp/ckpt'",
    "OUTPUT_PATH": "'/tmp/preds.jsonl'",
}

# Cells of the paper's grid: the model comes from a gin/experiments/mt5_*.gin before them.
GRID_CELLS = {f"gin/experiments/{n}.gin" for n in
              ("paper_recipe", "en2ko", "ko2en", "mono_en", "mono_ko", "insta_rte",
               "insta_klue_nli")}


def _parse(files, extra=()):
  gin_config.register()
  gin.clear_config()
  gin.add_config_file_search_path(str(GIN_DIR.parent))
  gin.parse_config_files_and_bindings(list(files), list(extra), finalize_config=False)


def _entries_configured_by(files):
  """The entry functions these files themselves bind (without the overlay)."""
  _parse(files)
  _parse(files, [f"{m} = {REQUIRED[m]}" for m in gin_config.required_macros_unset()])
  return [name for name in ENTRIES if gin.get_bindings(name)]


def test_there_are_gin_files_of_each_layer():
  layers = {pathlib.Path(f).parts[1] for f in ALL_FILES if len(pathlib.Path(f).parts) > 2}
  assert {"models", "runs", "experiments"} <= layers
  assert "gin/local_tiny.gin" in ALL_FILES


@pytest.mark.parametrize("path", ALL_FILES)
def test_gin_file_parses_with_tiny_overlay(path):
  own = [path]
  if path.startswith("gin/runs/train") or path.startswith("gin/runs/finetune") or \
      path in GRID_CELLS:
    own = ["gin/models/tiny.gin", path]  # run files need a model file, as experiments give
  if path == "gin/runs/peqa.gin":  # an overlay on a whole training experiment
    own = ["gin/experiments/demo.gin", path]
  entries = _entries_configured_by(own) if path != "gin/local_tiny.gin" else []
  files = own if path == "gin/local_tiny.gin" else own + ["gin/local_tiny.gin"]
  _parse(files)
  missing = gin_config.required_macros_unset()
  unknown = [m for m in missing if m not in REQUIRED]
  assert not unknown, f"{path}: REQUIRED macros without a test value: {unknown}"
  _parse(files, [f"{m} = {REQUIRED[m]}" for m in missing])
  assert gin_config.required_macros_unset() == []

  for name in entries:
    fn = ENTRIES[name]
    bindings = gin.get_bindings(name)
    needed = [p.name for p in inspect.signature(fn).parameters.values()
              if p.default is inspect.Parameter.empty]
    assert not [p for p in needed if p not in bindings], f"{path}: {name} lacks {needed}"
    if "optimizer" in bindings:
      bindings["optimizer"].build()
    if "mesh" in bindings:
      assert bindings["mesh"].axis_sizes(8)
    model = bindings.get("model")
    if isinstance(model, T5Config):
      shapes = jax.eval_shape(lambda r, m=model: boxed_params(m, r), jax.random.key(0))
      assert jax.tree.leaves(shapes)
  if not entries:  # a model file, or the overlay: it must define a usable MODEL
    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    assert isinstance(model, T5Config)
  gin.clear_config()


def test_model_override_order_later_file_wins():
  _parse(["gin/models/xxl.gin", "gin/local_tiny.gin"])
  tiny = gin.get_configurable("T5Config")()
  _parse(["gin/models/tiny.gin"])
  assert tiny == gin.get_configurable("T5Config")()
  gin.clear_config()


@pytest.mark.parametrize("path", [f for f in ALL_FILES if f.startswith("gin/models/")])
def test_model_files_set_every_field(path):
  """So that a later model file replaces an earlier one completely."""
  import dataclasses
  _parse([path])
  model = gin.query_parameter("%MODEL").scoped_configurable_fn()
  assert isinstance(model, LlamaConfig if "llama" in pathlib.Path(path).name else T5Config)
  cls = type(model)
  assert set(gin.get_bindings(cls.__name__)) == {f.name for f in dataclasses.fields(cls)}
  gin.clear_config()


@pytest.mark.parametrize("size", ["large", "xl", "xxl"])
@pytest.mark.parametrize("cell,mixture", [("en2ko", "p3_train"), ("ko2en", "korani_train"),
                                          ("mono_en", "p3_train"), ("mono_ko", "korani_train")])
def test_grid_cells_train_the_paper_setting(size, cell, mixture):
  _parse([f"gin/experiments/{cell}.gin", f"gin/experiments/mt5_{size}.gin"],
         ["MODEL_DIR = '/tmp/x'", "INITIAL_CHECKPOINT_PATH = '/ckpt'", "TRAIN_STEPS = 10"])
  bindings = gin.get_bindings("train")
  data = bindings["data"]
  assert data.mixture_or_task_name == mixture
  assert dict(data.task_feature_lengths) == {"inputs": 768, "targets": 256}
  assert bindings["optimizer"].name == "adamw" and bindings["optimizer"].schedule.base == 1e-5
  assert bindings["model"].dtype == "bfloat16"
  gin.clear_config()


GRID_EVALUATIONS = {
    "eval_ko_targets": "xlt_en2ko_eval_targettemplates",
    "eval_ko_targets_xltemplates": "xlt_en2ko_eval_xltemplates",
    "eval_en_targets": "xlt_ko2en_eval_targettemplates",
    "eval_en_targets_xltemplates": "xlt_ko2en_eval_xltemplates",
    "eval_kmmlu": "kmmlu", "eval_kobest": "kobest"}


def test_grid_evaluations_name_registered_mixtures(shared_data):
  for name, mixture in GRID_EVALUATIONS.items():
    _parse(["gin/experiments/baseline.gin", f"gin/experiments/{name}.gin"],
           ["CHECKPOINT_PATH = '/ckpt'"])
    assert gin.get_bindings("evaluate")["data"].mixture_or_task_name == mixture
    gin.clear_config()
  # The English-template mixtures exist once promptsource's templates are there: check in a
  # fresh process, so this test's registrations do not leak into the others.
  import subprocess
  import sys
  from conftest import REPO_ROOT, subprocess_env
  code = ("import seqio, tasks; missing = [m for m in %r if m not in "
          "seqio.MixtureRegistry.names()]; assert not missing, missing" %
          sorted(GRID_EVALUATIONS.values()))
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=300, env=subprocess_env(
                            XLT_PROMPTSOURCE_DIR=str(shared_data / "promptsource" / "templates")))
  assert proc.returncode == 0, proc.stderr[-2000:]


INSTA_CELLS = {"insta_rte": ("insta/super_glue_rte/p3_train/top5", "insta_rte_eval",
                             "insta/super_glue_rte/eval"),
               "insta_demo": ("insta/demo_en_next_number/demo_mix/top2", "insta_demo_eval",
                              "insta/demo_en_next_number/eval")}


def test_insta_cells_train_on_a_selection_and_evaluate_its_target(shared_data):
  from xlt.insta.selection import NAME_RE
  for cell, (mixture, eval_file, eval_mixture) in INSTA_CELLS.items():
    _parse([f"gin/experiments/{cell}.gin"] + (["gin/experiments/mt5_xl.gin"]
                                              if cell == "insta_rte" else []),
           ["MODEL_DIR = '/tmp/x'", "INITIAL_CHECKPOINT_PATH = '/ckpt'", "TRAIN_STEPS = 10"])
    assert gin.get_bindings("train")["data"].mixture_or_task_name == mixture
    assert NAME_RE.match(mixture)
    _parse([f"gin/experiments/{eval_file}.gin"], ["CHECKPOINT_PATH = '/ckpt'"])
    assert gin.get_bindings("evaluate")["data"].mixture_or_task_name == eval_mixture
    gin.clear_config()
  # The target mixtures exist: RTE's ten P3 templates, rank classification (fresh process).
  import subprocess
  import sys
  from conftest import REPO_ROOT, subprocess_env
  code = ("import seqio, tasks; m = seqio.get_mixture_or_task('insta/super_glue_rte/eval'); "
          "names = sorted(t.name for t in m.tasks); assert len(names) == 10, names; "
          "assert all(n.startswith('p3_super_glue_rte__') and n.endswith('_score_eval') "
          "for n in names), names; "
          "assert len(seqio.get_mixture_or_task('insta/demo_en_next_number/eval').tasks) == 2")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=300, env=subprocess_env(
                            XLT_PROMPTSOURCE_DIR=str(shared_data / "promptsource" / "templates")))
  assert proc.returncode == 0, proc.stderr[-2000:]
