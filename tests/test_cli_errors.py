"""Mistakes a user makes get one clear message and a non-zero exit, no traceback."""
import os

import pytest

from xlt import cli

TINY_RUN = ["--gin_file=gin/experiments/demo.gin", "--gin_file=gin/local_tiny.gin"]


def _run(capsys, *argv):
  code = cli.main(list(argv))
  err = capsys.readouterr().err
  assert "Traceback" not in err
  return code, err


def test_unknown_gin_binding_names_it(capsys, tmp_path):
  code, err = _run(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{tmp_path}'",
                   "--gin.T5Config.dmodel=3")
  assert code == 2
  assert "dmodel" in err and "T5Config" in err


def test_unknown_gin_file(capsys):
  code, err = _run(capsys, "train", "--gin_file=gin/experiments/nope.gin")
  assert code == 2
  assert "gin/experiments/nope.gin" in err and "not found" in err


def test_missing_required_macro_names_it_and_shows_syntax(capsys):
  code, err = _run(capsys, "train", *TINY_RUN)
  assert code == 2
  assert "MODEL_DIR" in err
  assert "--gin.MODEL_DIR=" in err


def test_several_missing_macros_are_all_listed(capsys):
  code, err = _run(capsys, "train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/train.gin")
  assert code == 2
  for macro in ("MODEL_DIR", "MIXTURE_OR_TASK_NAME", "TASK_FEATURE_LENGTHS", "TRAIN_STEPS"):
    assert macro in err


def test_unknown_task_lists_closest_names(capsys, tmp_path):
  code, err = _run(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{tmp_path}'",
                   "--gin.MIXTURE_OR_TASK_NAME='demo_mixx'")
  assert code == 2
  assert "demo_mixx" in err and "demo_mix" in err.split("Did you mean:")[1]


def test_model_dir_not_writable(capsys, tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  code, err = _run(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{blocker}/run'")
  assert code == 2
  assert "MODEL_DIR" in err and "not writable" in err
  assert blocker.read_text() == "not a directory"


def test_bad_override_syntax(capsys):
  with pytest.raises(SystemExit, match="--gin.KEY=VALUE"):
    cli.main(["train", *TINY_RUN, "--gin.MODEL_DIR"])


def test_invalid_config_value_is_a_clear_error(capsys, tmp_path):
  code, err = _run(capsys, "train", *TINY_RUN, f"--gin.MODEL_DIR='{tmp_path}'",
                   "--gin.OptimizerConfig.name='sgd'")
  assert code == 2
  assert "sgd" in err and "adafactor" in err


def test_eval_of_missing_checkpoint(capsys, tmp_path):
  code, err = _run(capsys, "eval", "--gin_file=gin/experiments/demo_eval.gin",
                   f"--gin.CHECKPOINT_PATH='{tmp_path}/none'")
  assert code == 2
  assert os.fspath(tmp_path / "none") in err and "no checkpoint" in err


def test_unknown_command(capsys):
  code, err = _run(capsys, "trian")
  assert code == 2 and "trian" in err
