"""`xlt` command line: train, eval, infer, report, compile, convert, quantize, tasks, select.

  xlt train --gin_file=gin/experiments/demo.gin --gin.MODEL_DIR="'/tmp/run'"
  xlt eval  --gin_file=gin/runs/eval.gin --gin.CHECKPOINT_PATH="'/tmp/run'" ...
  xlt infer --gin_file=gin/runs/infer.gin ... --gin.OUTPUT_PATH="'/tmp/preds.jsonl'"
  xlt compile --gin_file=gin/models/xl.gin --gin_file=gin/runs/train.gin \\
              --gin.TASK_FEATURE_LENGTHS="{'inputs': 1024, 'targets': 256}" --topology v4-32
  xlt report RUN_A RUN_B ... [--names a,b] [--statistic mean|median] [--out DIR]
  xlt convert hf /path/to/hf_snapshot /tmp/ckpt
  xlt tasks list [PATTERN] [--cluster C] [--language ko] [--split train|eval] [--mixtures]
  xlt tasks show TASK [--n 3]
  xlt tasks check [PATTERN]
  xlt quantize CKPT OUT --bits 4 --group 128 [--pattern REGEX]
  xlt select --target super_glue_rte --pool p3_train --k 5 [--aggregate vote] [--encoder E]
  xlt select align --pool p3_train --out DIR
  xlt select report --pool p3_train [--aligned DIR]

Errors a user can fix (bad gin, unknown task, unwritable MODEL_DIR, incompatible
checkpoint, non-finite loss) print one clear message and exit non-zero, no traceback.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from xlt import process_exit, tpu_env

EXIT_USAGE = 2
EXIT_FAILED = 1

_GIN_COMMANDS = {"train": "train", "eval": "evaluate", "infer": "infer"}


def _split_gin_args(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
  """--gin_file=F (repeatable) and --gin.KEY=VALUE overrides, in order; the rest."""
  files, bindings, rest = [], [], []
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--gin_file"):
      if "=" in arg:
        files.append(arg.split("=", 1)[1])
      else:
        i += 1
        files.append(argv[i])
    elif arg.startswith("--gin."):
      key_value = arg[len("--gin."):]
      if "=" not in key_value:
        raise SystemExit(f"error: {arg!r}: overrides look like --gin.KEY=VALUE")
      bindings.append(key_value.replace("=", " = ", 1))
    else:
      rest.append(arg)
    i += 1
  return files, bindings, rest


def _run_gin_command(command: str, argv: list[str]) -> int:
  files, bindings, rest = _split_gin_args(argv)
  if rest:
    print(f"error: unexpected arguments for `xlt {command}`: {' '.join(rest)}", file=sys.stderr)
    return EXIT_USAGE

  def run():
    import gin

    from xlt import config_checks, gin_config
    gin_config.parse(files, bindings)
    config_checks.check_types()
    config_checks.check_macro_references()
    config_checks.check_batch_fits_mesh(command, _GIN_COMMANDS[command])
    # MODEL_DIR/config.gin is written by train() once it holds the run's lock, so a second
    # run refused by the lock cannot overwrite the first one's record.
    return gin.get_configurable(_GIN_COMMANDS[command])()

  def usage_errors() -> tuple:
    from xlt import gin_config
    from xlt.checkpoints import IncompatibleCheckpointError
    from xlt.data.registry import UnknownTaskError
    from xlt.trainer import ModelDirError
    return (gin_config.GinConfigError, UnknownTaskError, ModelDirError,
            IncompatibleCheckpointError, FileNotFoundError)

  def failures() -> tuple:
    from xlt.trainer import NonFiniteLossError
    return (NonFiniteLossError,)

  # Imports, task loading and compilation take a while: a stop signal there ends the
  # process with one line (the training loop itself saves and stops, xlt.trainer).
  with process_exit.stop_signals_raise():
    code, result = _reporting_errors(run, usage=usage_errors, failure=failures)
  if code is not None:
    return code
  if command == "train" and getattr(result, "stopped_by_signal", None):
    return 128 + (15 if result.stopped_by_signal == "SIGTERM" else 2)
  return 0


def _reporting_errors(fn, usage=(), failure=()) -> tuple[int | None, object]:
  """(None, fn()), or (exit code, None) after one line on stderr: a stop signal exits
  128 + its number; a full disk, `usage` errors and ValueError (config values rejected by
  the dataclasses, gin's own binding errors) exit 2, `failure` ones 1. `usage` and
  `failure` are tuples of classes, or functions returning them (so their modules are
  imported inside the signal handling). XLT_DEBUG=1 prints the traceback first."""
  try:
    return None, fn()
  except process_exit.Stopped as e:
    process_exit.stop_reported()
    print(f"xlt: stopped by {e.signal_name} before finishing; nothing was saved since the "
          "last checkpoint", file=sys.stderr)
    return e.exit_code, None
  except Exception as e:  # noqa: BLE001 - sorted below; anything else is re-raised
    usage = usage() if callable(usage) else usage
    failure = failure() if callable(failure) else failure
    full = process_exit.disk_full_path(e)
    if full is not None:
      code, message = EXIT_USAGE, ("no space left on device writing " + (full or "a file (the error names none)"))
      process_exit.disk_full_reported()
    elif isinstance(e, usage):
      code, message = EXIT_USAGE, _one_line(e)
    elif isinstance(e, failure):
      code, message = EXIT_FAILED, _one_line(e)
    elif isinstance(e, ValueError):
      code, message = EXIT_USAGE, _one_line(e)
      if not os.environ.get("XLT_DEBUG"):
        message += " (set XLT_DEBUG=1 for the traceback)"
    else:
      raise
    if os.environ.get("XLT_DEBUG"):
      traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return code, None


def _one_line(error: BaseException) -> str:
  """The message without the "In call to configurable ..." lines gin appends."""
  lines = [line for line in str(error).splitlines()
           if not line.strip().startswith("In call to configurable")]
  return "\n".join(lines).strip() or type(error).__name__


def _write_config(model_dir: str) -> None:
  """MODEL_DIR/config.gin (xlt.gin_config.write_config); for train() to call once it holds
  the MODEL_DIR lock, so a refused second run cannot overwrite a running run's record."""
  from xlt import gin_config
  gin_config.write_config(model_dir)


def _compile(argv: list[str]) -> int:
  """Ahead-of-time memory check of the train step (xlt.aot): 1 if it does not fit."""
  from xlt import aot, gin_config
  files, bindings, rest = _split_gin_args(argv)
  parser = argparse.ArgumentParser(prog="xlt compile", description=(
      "Compile the train step of a gin configuration for a device topology without "
      "allocating it, and print its per-device memory against the device budget."))
  parser.add_argument("--topology", default="local", help=(
      aot.TOPOLOGY_HELP + "; 'local' on a CPU: fake devices with XLA_FLAGS="
      "--xla_force_host_platform_device_count=N; a TPU slice needs libtpu, not a TPU"))
  parser.add_argument("--memory_gib", type=float, default=None,
                      help="per-device budget in GiB (default: the device's memory)")
  args = parser.parse_args(rest)

  def run():
    topology = aot.resolve_topology(args.topology, args.memory_gib)
    aot.parse_gin(files, bindings)
    return aot.compile_train_step(aot.step_config_from_gin(), topology)

  code, report = _reporting_errors(
      run, usage=(gin_config.GinConfigError, aot.TopologyError, aot.TpuUnavailableError))
  if code is not None:
    return code
  print(report.table())
  if not report.fits:
    print(f"error: does not fit: {report.explain()}", file=sys.stderr)
    return EXIT_FAILED
  return 0


def _convert(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="xlt convert", description=(
      "Convert a Hugging Face T5/mT5 or LlamaForCausalLM snapshot (config.json + "
      "*.safetensors or pytorch_model.bin) into an xlt orbax checkpoint usable as "
      "INITIAL_CHECKPOINT_PATH (dispatched on config.json's model_type)."))
  parser.add_argument("format", choices=["hf"])
  parser.add_argument("snapshot_dir")
  parser.add_argument("out_dir")
  args = parser.parse_args(argv)
  from xlt.convert import hf_llama, hf_t5
  convert = (hf_llama.convert_hf_checkpoint if hf_llama.is_llama_snapshot(args.snapshot_dir)
             else hf_t5.convert_hf_checkpoint)
  code, _ = _reporting_errors(lambda: convert(args.snapshot_dir, args.out_dir),
                              usage=(FileNotFoundError, FileExistsError, ValueError, KeyError))
  return code if code is not None else 0


def _quantize(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="xlt quantize", description=(
      "Quantize a float xlt checkpoint (round-to-nearest, asymmetric) for PEQA: writes OUT "
      "like `xlt convert hf` does, usable as INITIAL_CHECKPOINT_PATH or by xlt eval/infer."))
  parser.add_argument("checkpoint", help="a run directory, its checkpoints/ or a step folder")
  parser.add_argument("out_dir")
  parser.add_argument("--bits", type=int, default=4, choices=[2, 3, 4, 8])
  parser.add_argument("--group", type=int, default=128, choices=[0, 32, 64, 128, 256],
                      help="input rows per scale and zero-point; 0: per output channel")
  parser.add_argument("--pattern", default=".*",
                      help="regex over module paths of the weights to quantize (default: all)")
  args = parser.parse_args(argv)
  from xlt.checkpoints import IncompatibleCheckpointError
  from xlt.quant.convert import quantize_checkpoint
  code, _ = _reporting_errors(
      lambda: quantize_checkpoint(args.checkpoint, args.out_dir, bits=args.bits,
                                  group_size=args.group, pattern=args.pattern),
      usage=(FileNotFoundError, FileExistsError, ValueError, IncompatibleCheckpointError))
  return code if code is not None else 0


def _report(argv: list[str]) -> int:
  from xlt import eval_report
  code, result = _reporting_errors(lambda: eval_report.main(argv), usage=(FileNotFoundError,))
  return code if code is not None else result


def _tasks(argv: list[str]) -> int:
  from xlt import tasks_cli
  from xlt.data.registry import UnknownTaskError
  code, result = _reporting_errors(lambda: tasks_cli.main(argv),
                                   usage=(UnknownTaskError, FileNotFoundError))
  return code if code is not None else result


def _select(argv: list[str]) -> int:
  from xlt.data.registry import UnknownTaskError
  from xlt.insta import cli as insta_cli
  from xlt.insta.selection import SelectionError
  code, result = _reporting_errors(
      lambda: insta_cli.main(argv),
      usage=(SelectionError, UnknownTaskError, FileNotFoundError, FileExistsError))
  return code if code is not None else result


USAGE = __doc__


def main(argv: list[str] | None = None) -> int:
  """Runs one command and returns its exit code. Called without `argv` (the `xlt` and
  `python -m xlt` entry points) it is the process: it ends with os._exit after an error,
  so threads left by tf.data / orbax / tensorstore cannot keep a failed run alive."""
  if argv is not None:
    return _main(list(argv))
  process_exit.mute_stderr_while_disk_full()
  try:
    code = _main(sys.argv[1:])
  except process_exit.Stopped as e:
    process_exit.stop_reported()
    print(f"xlt: stopped by {e.signal_name}", file=sys.stderr)
    code = e.exit_code
  except KeyboardInterrupt:
    print("xlt: stopped by SIGINT", file=sys.stderr)
    code = 128 + 2
  except SystemExit as e:
    if e.code is not None and not isinstance(e.code, int):
      print(e.code, file=sys.stderr)
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_FAILED)
  except BaseException:  # noqa: BLE001 - an unexpected error: its traceback, then exit 1
    traceback.print_exc()
    code = EXIT_FAILED
  if code:
    process_exit.hard_exit(code)
  return code


def _main(argv: list[str]) -> int:
  tpu_env.quiet_libtpu_off_tpu()
  logging.basicConfig(level=os.environ.get("XLT_LOG_LEVEL", "INFO"),
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  for noisy in ("absl", "jax._src", "orbax", "tensorflow"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  # SeqIO warns on every in-memory (FunctionDataSource) task; the demo tasks are that by design.
  logging.getLogger("absl").addFilter(
      lambda record: "uncached FunctionDataset" not in record.getMessage())
  # Gin logs every include it tries before its search path (the repository root) finds it;
  # a file found nowhere is a GinConfigError with its own message.
  for handler in logging.getLogger().handlers:
    handler.addFilter(lambda record: not record.getMessage().startswith(
        ("system_path_file_exists:", "Path not found: ")))
  process_exit.quiet_disk_full_logs()
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(USAGE)
    return 0 if argv else EXIT_USAGE
  command, rest = argv[0], argv[1:]
  if command in _GIN_COMMANDS:
    return _run_gin_command(command, rest)
  if command == "compile":
    return _compile(rest)
  if command == "convert":
    return _convert(rest)
  if command == "report":
    return _report(rest)
  if command == "tasks":
    return _tasks(rest)
  if command == "quantize":
    return _quantize(rest)
  if command == "select":
    return _select(rest)
  print(f"error: unknown command {command!r}\n{USAGE}", file=sys.stderr)
  return EXIT_USAGE


if __name__ == "__main__":
  sys.exit(main())
