"""Checks of a parsed gin configuration before any work starts.

Gin passes whatever a file or `--gin.X=...` says: a quoted number reaches `train()` as a
string and fails steps later with a TypeError, a misspelled macro override is silently
unused, and a batch that does not split over the devices fails inside jax. Each of these
is one line naming the binding here, before a task is loaded or a model is built.
"""
from __future__ import annotations

import collections.abc
import difflib
import inspect
import math
import sys
import types
import typing
from typing import Any, Iterator

import gin

from xlt.gin_config import GinConfigError

_MACRO = "gin.macro"


class ConfigValueError(GinConfigError):
  """A gin-bound value that the configured function or dataclass cannot take."""


def _macro_name(value: Any) -> str | None:
  if isinstance(value, gin.config.ConfigurableReference) and value.selector == _MACRO:
    return "/".join(value.scopes)
  return None


def defined_macros() -> set[str]:
  return {scope for scope, selector in gin.config._CONFIG if selector == _MACRO}  # noqa: SLF001


def _binding_name(scope: str, selector: str, param: str) -> str:
  short = selector.rsplit(".", 1)[-1] if selector != _MACRO else ""
  if selector == _MACRO:
    return scope
  return f"{scope + '/' if scope else ''}{short}.{param}"


def _references(value: Any) -> Iterator[str]:
  """Macro names referenced by a bound value (also inside lists and dicts)."""
  name = _macro_name(value)
  if name is not None:
    yield name
  elif isinstance(value, (list, tuple)):
    for item in value:
      yield from _references(item)
  elif isinstance(value, dict):
    for item in value.values():
      yield from _references(item)


def macro_uses() -> dict[str, list[str]]:
  """{macro: [bindings that use it]} over the whole parsed configuration."""
  uses: dict[str, list[str]] = {}
  for (scope, selector), params in gin.config._CONFIG.items():  # noqa: SLF001
    for param, value in params.items():
      for name in _references(value):
        uses.setdefault(name, []).append(_binding_name(scope, selector, param))
  return uses


def _closest(name: str, candidates: set[str]) -> str:
  close = difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.6)
  return f"did you mean {', '.join(close)}?" if close else (
      f"macros in the loaded files: {', '.join(sorted(candidates)) or 'none'}")


def check_macro_overrides(override_keys: list[str], known: set[str]) -> None:
  """A `--gin.NAME=...` override of a macro that no loaded gin file defines or uses would
  change nothing; `known`: macros the files define, and macros any binding uses."""
  for key in override_keys:
    if "." in key or key in known:
      continue
    raise ConfigValueError(
        f"--gin.{key}=...: no loaded gin file defines or uses the macro {key}, so it would "
        f"change nothing; {_closest(key, known)}")


def check_macro_references() -> None:
  """Every `%NAME` used by a binding must be defined by a file or an override."""
  defined = defined_macros()
  for name, users in sorted(macro_uses().items()):
    if name not in defined:
      raise ConfigValueError(
          f"gin macro %{name} is used by {users[0]} but no loaded gin file or override defines "
          f"it (add the gin file that does, or --gin.{name}=...); {_closest(name, defined)}")


def _resolve(value: Any, depth: int = 0) -> Any:
  """The value with macro references replaced by what they are bound to."""
  name = _macro_name(value)
  if name is not None and depth < 20:
    bound = gin.config._CONFIG.get((name, _MACRO), {})  # noqa: SLF001
    return _resolve(bound["value"], depth + 1) if "value" in bound else value
  if isinstance(value, list):
    return [_resolve(v, depth) for v in value]
  if isinstance(value, tuple):
    return tuple(_resolve(v, depth) for v in value)
  if isinstance(value, dict):
    return {k: _resolve(v, depth) for k, v in value.items()}
  return value


def _type_hints(obj: Any) -> dict[str, Any]:
  """Evaluated annotations of a function or dataclass; any one that cannot be evaluated
  (a name only imported for type checkers) is left out rather than guessed."""
  try:
    return typing.get_type_hints(obj)
  except Exception:  # noqa: BLE001 - NameError, TypeError from odd annotations
    pass
  hints = {}
  namespace = vars(sys.modules.get(obj.__module__, object()))
  for name, annotation in getattr(obj, "__annotations__", {}).items():
    try:
      hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307
    except Exception:  # noqa: BLE001
      continue
  return hints


def _matches(value: Any, hint: Any) -> bool:
  """Whether a literal gin value fits an annotation. Only what can be told for sure is
  checked (builtins, Optional, containers); other annotations and gin references pass."""
  if isinstance(value, gin.config.ConfigurableReference) or hint is Any:
    return True
  origin = typing.get_origin(hint)
  args = typing.get_args(hint)
  if origin is typing.Union or origin is types.UnionType:
    return any(_matches(value, arm) for arm in args)
  if hint is None or hint is type(None):
    return value is None
  if origin is typing.Literal:
    return value in args
  if hint is bool:
    return isinstance(value, bool)
  if hint is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if hint is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if hint is str:
    return isinstance(value, str)
  if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
    if not isinstance(value, dict):
      return False
    key_hint, value_hint = args or (Any, Any)
    return all(_matches(k, key_hint) and _matches(v, value_hint) for k, v in value.items())
  if origin in (list, tuple, collections.abc.Sequence):
    if not isinstance(value, (list, tuple)):
      return False
    if origin is tuple and args and args[-1] is not Ellipsis:
      return len(args) == len(value) and all(map(_matches, value, args))
    item_hint = args[0] if args else Any
    return all(_matches(v, item_hint) for v in value)
  return True


def _type_name(hint: Any) -> str:
  return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def check_types() -> None:
  """Every bound value against the annotation of the parameter or field it goes to."""
  for (scope, selector), params in gin.config._CONFIG.items():  # noqa: SLF001
    if selector.startswith("gin."):
      continue  # macros and constants are checked where they are used
    configurable = gin.config._REGISTRY.get_match(selector)  # noqa: SLF001
    if configurable is None:
      continue
    hints = _type_hints(configurable.wrapped)
    for param, raw in params.items():
      if param not in hints:
        continue
      value = _resolve(raw)
      if _matches(value, hints[param]):
        continue
      where = _binding_name(scope, selector, param)
      macros = list(_references(raw))
      via = f" (from macro {macros[0]})" if macros else ""
      got = f"{type(value).__name__}"
      bad = _bad_item(value, hints[param])
      if bad is not None:
        got += f" whose {bad[0]} is {type(bad[1]).__name__} {bad[1]!r}"
      quoted = bad[1] if bad is not None else value
      hint = ""
      if isinstance(quoted, str) and _parses_as_number(quoted):
        hint = "; write numbers without quotes"
        if bad is None:
          hint += f", e.g. --gin.{macros[0] if macros else where}={value}"
      raise ConfigValueError(
          f"gin binding {where} = {value!r}{via}: expected {_type_name(hints[param])}, got "
          f"{got}{hint}")


def _bad_item(value: Any, hint: Any) -> tuple[str, Any] | None:
  """(which item, its value) of a dict or list that does not fit `hint`'s item type."""
  for arm in typing.get_args(hint) or (hint,):
    origin, args = typing.get_origin(arm), typing.get_args(arm)
    if isinstance(value, dict) and origin in (dict, collections.abc.Mapping) and len(args) == 2:
      for key, item in value.items():
        if not _matches(item, args[1]):
          return f"value for {key!r}", item
    if isinstance(value, (list, tuple)) and origin in (list, tuple, collections.abc.Sequence):
      if args and (origin is not tuple or args[-1] is Ellipsis):
        for i, item in enumerate(value):
          if not _matches(item, args[0]):
            return f"item {i}", item
  return None


def _parses_as_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def _raw_binding(selector: str, param: str, scope: str = "") -> tuple[str, Any] | None:
  """(the name to show, the raw value) of a binding, preferring the macro it comes from."""
  for (bound_scope, bound_selector), params in gin.config._CONFIG.items():  # noqa: SLF001
    if bound_selector.endswith(selector) and bound_scope == scope and param in params:
      macros = list(_references(params[param]))
      return (macros[0] if macros else _binding_name(scope, bound_selector, param),
              params[param])
  return None


def check_batch_fits_mesh(command: str, function: str) -> None:
  """The batch (and microbatches) must split evenly over data x fsdp of the mesh; jax would
  fail only when the first batch is placed, with a message that does not name BATCH_SIZE."""
  import jax

  from xlt import distributed, partitioning
  distributed.initialize_from_env()  # before jax counts devices on a multi-host run
  kwargs = gin.get_bindings(function)
  wrapped = gin.config._REGISTRY.get_match(function).wrapped  # noqa: SLF001
  defaults = {name: p.default for name, p in inspect.signature(wrapped).parameters.items()}
  mesh = kwargs.get("mesh", defaults.get("mesh"))
  data = kwargs.get("data")
  if mesh is None or data is None:
    return
  devices = jax.device_count()
  sizes = mesh.axis_sizes(devices)
  shards = sizes[0] * sizes[1]
  microbatches = kwargs.get("num_microbatches", 1) if command == "train" else 1
  step = math.lcm(shards, microbatches)
  if data.batch_size % step == 0:
    return
  name = (_raw_binding("DataConfig", "batch_size", command) or ("BATCH_SIZE", None))[0]
  parts = f"data x fsdp = {sizes[0]} x {sizes[1]} = {shards}"
  if microbatches > 1:
    parts += f", and train.num_microbatches = {microbatches}"
  valid = ", ".join(str(step * k) for k in range(1, 5))
  raise ConfigValueError(
      f"{name} = {data.batch_size} does not split over the mesh of {devices} devices "
      f"({parts}); use a multiple of {step}: {valid}, ...")
