"""What every converter writes: OUT/0 (orbax items `params`, `model_config`, as the
trainer restores from INITIAL_CHECKPOINT_PATH) and OUT/model.gin, never over an earlier
output."""
from __future__ import annotations

import json
import os
from typing import Any, Iterable


def read_config_json(snapshot_dir: str, what: str) -> tuple[str, dict]:
  """(path, contents) of snapshot_dir/config.json; `what` names the expected snapshot."""
  path = os.path.join(snapshot_dir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no config.json in {snapshot_dir}: expected a Hugging Face {what} "
                            "snapshot directory")
  with open(path) as f:
    return path, json.load(f)


def existing_outputs(out_dir: str, also: Iterable[str] = ("spiece.model",)) -> list[str]:
  """What in out_dir a conversion would write over: checkpoint steps, model.gin, `also`."""
  if not os.path.isdir(out_dir):
    return []
  names = {"model.gin", *also}
  return sorted(name for name in os.listdir(out_dir)
                if (name.isdigit() and os.path.isdir(os.path.join(out_dir, name)))
                or ".orbax-checkpoint-tmp" in name or name in names)


def refuse_existing(out_dir: str, also: Iterable[str] = ("spiece.model",)) -> None:
  existing = existing_outputs(out_dir, also)
  if existing:
    raise FileExistsError(f"{out_dir} already holds a converted checkpoint ({', '.join(existing)});"
                          " refusing to overwrite it: choose a new output directory")


def write_checkpoint(out_dir: str, params: Any, model_config: dict, gin_text: str) -> str:
  """Saves step 0 and model.gin; returns the gin file's path."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  manager = ocp.CheckpointManager(out_dir)
  manager.save(0, args=ocp.args.Composite(params=ocp.args.StandardSave(params),
                                          model_config=ocp.args.JsonSave(model_config)))
  manager.wait_until_finished()
  manager.close()
  gin_path = os.path.join(out_dir, "model.gin")
  with open(gin_path, "w") as f:
    f.write(gin_text)
  return gin_path
