"""INSTA task selection: rank a pool's datasets by how alike their instructions are to a
target's, keep the top k, and register them as the SeqIO mixture `insta/<target>/<pool>/top<k>`.

  target  a registered task (its dataset's templates in that task's template language), a
          dataset (catalogue key "super_glue/rte" or its slug "super_glue_rte"), or free
          instruction text (anything with a space in it);
  pool    a registered mixture (e.g. p3_train): its datasets, each with the templates of its
          tasks, the target's own dataset left out.

Every instruction is embedded once per encoder (cache.py); candidates are scored by
aggregate.py. The mixture keeps the pool's tasks of the chosen datasets at the pool's rates.
Its name is `insta/<target>/<pool>/top<k>` for the default settings (vote, the default
encoder); another aggregate adds `_mean` / `_max`, another encoder `_enc<its id[:8]>`.
The selection is saved as JSON in the selection store ($XLT_INSTA_DIR, default
$XLT_CACHE_DIR/insta/selections) and beside every run that trains on it, so the mixture
can be registered again without an encoder.
"""
from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import json
import logging
import os
import pathlib
import re
import tempfile
from typing import Any

import numpy as np

from xlt.data.catalogue import slug
from xlt.insta import aggregate as aggregate_lib
from xlt.insta import cache as cache_lib
from xlt.insta.instructions import Instruction, instructions_of

log = logging.getLogger("xlt.insta")

SELECTION_FORMAT = "xlt.insta.selection/1"
PREFIX = "insta/"
STORE_ENV_VAR = "XLT_INSTA_DIR"
BESIDE_RUN = "insta_selection.json"
DEFAULT_K = 5
NAME_RE = re.compile(r"^insta/(?P<target>[^/]+)/(?P<pool>[^/]+)/top(?P<k>\d+)"
                     r"(?:_(?P<aggregate>mean|max))?(?:_enc(?P<encoder>[0-9a-f]{8}))?$")


class SelectionError(ValueError):
  """A target, pool or selection that cannot be used; the message says which and why."""


# ------------------------------------------------------------------ targets and pools

@dataclasses.dataclass(frozen=True)
class Target:
  spec: str                 # as given
  slug: str                 # its part of the mixture name
  instructions: tuple[Instruction, ...]
  dataset: str | None = None  # None: free text
  cluster: str | None = None
  language: str | None = None


@dataclasses.dataclass(frozen=True)
class Candidate:
  dataset: str
  cluster: str
  instructions: tuple[Instruction, ...]
  tasks: tuple[tuple[str, float], ...]  # (task, rate) in the pool


@dataclasses.dataclass(frozen=True)
class Pool:
  name: str
  candidates: tuple[Candidate, ...]
  without_instructions: tuple[str, ...] = ()  # tasks with no template (pre-rendered rows)

  def texts_by_dataset(self) -> dict[str, list[str]]:
    return {c.dataset: [i.text for i in c.instructions] for c in self.candidates}


def native_style(language: str | None) -> str:
  """The template style of a dataset's own templates: P3 for English, KORANI for Korean.
  (The cross-lingual experiment also registers English KORANI-style and Korean P3-style
  templates on the held-out datasets; those are not the target's own instructions.)"""
  return "korani" if language == "ko" else "p3"


def free_text_target(text: str) -> Target:
  digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
  return Target(text, f"text_{digest}", (Instruction("", "free_text", text.strip()),))


def _catalogue_key(dataset: str) -> str | None:
  """The catalogue entry a task's dataset belongs to ('anli_r2' -> 'anli'), if any."""
  from xlt.data import catalogue
  for key in (dataset, re.sub(r"_r\d+$", "", dataset)):
    try:
      return catalogue.get(key).key
    except KeyError:
      continue
  return None


def _registered_tasks() -> dict:
  from xlt.data import registry, template_tasks
  registry.import_task_modules()
  return template_tasks.TASKS


def resolve_target(spec: str) -> Target:
  """A Target from a task name, a dataset key or slug, or free text (see the module doc)."""
  from tasks import template_store
  from xlt.data import catalogue
  spec = spec.strip()
  if not spec:
    raise SelectionError("--target is empty")
  tasks = _registered_tasks()
  by_slug: dict[str, str] = {}
  for info in tasks.values():
    by_slug.setdefault(slug(info.dataset), info.dataset)
  for info in catalogue.all_datasets():
    by_slug.setdefault(slug(info.key), info.key)
  language = style = None
  if spec in tasks:
    dataset, language = tasks[spec].dataset, tasks[spec].template_language
    style = tasks[spec].template.style if tasks[spec].template else None
  elif spec in by_slug.values() or slug(spec) in by_slug:
    dataset = spec if spec in by_slug.values() else by_slug[slug(spec)]
  elif re.search(r"\s", spec):
    return free_text_target(spec)
  else:
    close = difflib.get_close_matches(spec, list(by_slug) + list(tasks), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise SelectionError(
        f"--target {spec!r} is neither a registered task, a dataset, nor instruction text "
        f"(text needs at least one space).{hint}")
  key = _catalogue_key(dataset)
  info = catalogue.get(key) if key else None
  if language is None:
    language = info.language if info else next(
        (i.language for i in tasks.values() if i.dataset == dataset), None)
  in_language = [i.template for i in tasks.values()
                 if i.dataset == dataset and i.template is not None and not i.score_eval
                 and i.template.language == language]
  style = style or native_style(language)
  templates = [t for t in in_language if t.style == style] or in_language
  if not templates and key:
    templates = template_store.templates(key, language=language, style=style)
  instructions = tuple(instructions_of(templates))
  if not instructions:
    raise SelectionError(
        f"target {spec!r} (dataset {dataset}) has no {language or ''} templates registered; "
        "P3 datasets need XLT_PROMPTSOURCE_DIR (docs/data.md), or give the instruction text")
  cluster = info.cluster if info else next(
      (i.cluster for i in tasks.values() if i.dataset == dataset), None)
  suffix = "" if info is None or language == info.language else f"_{language}"
  return Target(spec, slug(dataset) + suffix, instructions, dataset, cluster, language)


def resolve_pool(name: str, exclude: str | None = None) -> Pool:
  """The datasets of mixture (or task) `name`, their templates and rates, minus `exclude`."""
  from xlt.data import registry
  tasks = _registered_tasks()
  try:
    mixture = registry.get_task_or_mixture(name)
  except registry.UnknownTaskError as e:
    raise SelectionError(f"--pool: {e}") from None
  leaves = getattr(mixture, "tasks", [mixture])
  rate_of = getattr(mixture, "get_rate", lambda task: 1.0)
  excluded = {slug(exclude), slug(_catalogue_key(exclude) or exclude)} if exclude else set()
  grouped: dict[str, dict[str, Any]] = {}
  bare = []
  for task in sorted(leaves, key=lambda t: t.name):
    info = tasks.get(task.name)
    if info is None or info.score_eval:
      continue
    if info.template is None:
      bare.append(task.name)
      continue
    if {slug(info.dataset), slug(_catalogue_key(info.dataset) or info.dataset)} & excluded:
      continue
    entry = grouped.setdefault(info.dataset, {"cluster": info.cluster, "templates": [],
                                              "tasks": []})
    entry["templates"].append(info.template)
    entry["tasks"].append((task.name, float(rate_of(task))))
  if bare:
    log.warning("pool %s: %d tasks have no template (pre-rendered rows) and cannot be "
                "selected, e.g. %s", name, len(bare), bare[0])
  candidates = tuple(
      Candidate(dataset, e["cluster"], tuple(instructions_of(e["templates"])), tuple(e["tasks"]))
      for dataset, e in sorted(grouped.items()))
  candidates = tuple(c for c in candidates if c.instructions)
  if not candidates:
    raise SelectionError(f"pool {name!r} has no dataset with templates to compare"
                         + (f" once the target {exclude!r} is left out" if exclude else ""))
  return Pool(name, candidates, tuple(bare))


def pool_from_templates(name: str, datasets: dict[str, tuple[str, list]]) -> Pool:
  """A pool from {dataset: (cluster, templates)}: to rank datasets that no mixture holds
  (the selection then has no tasks to train on)."""
  return Pool(name, tuple(Candidate(d, cluster, tuple(instructions_of(templates)), ())
                          for d, (cluster, templates) in sorted(datasets.items())))


# ------------------------------------------------------------------------- selecting

@dataclasses.dataclass(frozen=True)
class Ranked:
  dataset: str
  cluster: str
  score: float
  mean: float   # mean cosine to the target's instructions
  max: float    # best single cosine
  templates: int


@dataclasses.dataclass(frozen=True)
class Selection:
  name: str
  target: str
  target_slug: str
  target_dataset: str | None
  target_cluster: str | None
  pool: str
  k: int
  aggregate: str
  encoder: str      # display name
  encoder_id: str
  encoder_spec: str | None  # what --encoder was (None: the default)
  ranking: tuple[Ranked, ...]                # every candidate, best first
  tasks: tuple[tuple[str, float], ...]       # the mixture: the top k's tasks and rates
  created: str = ""

  @property
  def selected(self) -> tuple[Ranked, ...]:
    return self.ranking[:self.k]

  def to_json(self) -> dict:
    out = dataclasses.asdict(self)
    out["ranking"] = [dataclasses.asdict(r) for r in self.ranking]
    out["tasks"] = [list(t) for t in self.tasks]
    return {"format": SELECTION_FORMAT, **out}

  @classmethod
  def from_json(cls, data: dict, where: str = "<selection>") -> "Selection":
    found = data.get("format") if isinstance(data, dict) else type(data).__name__
    if found != SELECTION_FORMAT:
      raise SelectionError(f"{where}: not an xlt INSTA selection (format "
                           f"{found!r}, expected {SELECTION_FORMAT!r})")
    try:
      fields = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
      fields["ranking"] = tuple(Ranked(**r) for r in data["ranking"])
      fields["tasks"] = tuple((str(n), float(r)) for n, r in data["tasks"])
      return cls(**fields)
    except (KeyError, TypeError, ValueError) as e:
      raise SelectionError(f"{where}: malformed selection ({type(e).__name__}: {e})") from None

  def table(self, rows: int | None = None) -> str:
    """The ranked datasets (the selected ones marked), as a fixed-width text table."""
    shown = self.ranking if rows is None else self.ranking[:max(rows, self.k)]
    width = max([len("dataset")] + [len(r.dataset) for r in shown])
    cwidth = max([len("cluster")] + [len(r.cluster) for r in shown])
    lines = [f"{'':2}{'#':>3}  {'dataset':<{width}}  {'cluster':<{cwidth}}  "
             f"{self.aggregate:>7}  {'mean':>6}  {'max':>6}"]
    for i, r in enumerate(shown):
      mark = "* " if i < self.k else "  "
      lines.append(f"{mark}{i + 1:>3}  {r.dataset:<{width}}  {r.cluster:<{cwidth}}  "
                   f"{r.score:>7.4f}  {r.mean:>6.3f}  {r.max:>6.3f}")
    return "\n".join(lines)


def mixture_name(target_slug: str, pool: str, k: int, aggregate: str = "vote",
                 encoder_tag: str = "") -> str:
  name = f"{PREFIX}{target_slug}/{pool}/top{k}"
  if aggregate != "vote":
    name += f"_{aggregate}"
  if encoder_tag:
    name += f"_enc{encoder_tag}"
  return name


def embed_instructions(encoder, texts: list[str], cache_dir="default",
                       progress: bool = False) -> np.ndarray:
  """[N, H] unit vectors, from the cache where it has them."""
  cache = cache_lib.EmbeddingCache(encoder.encoder_id, cache_dir)
  vectors, new = cache_lib.embed_cached(
      texts, lambda missing: encoder.embed(missing, progress=progress),
      encoder.config.hidden_size, cache)
  log.info("embedded %d instructions with %s (%d new, %d from the cache)", len(set(texts)),
           encoder.name, new, len(set(texts)) - new)
  return vectors


def rank(target: Target, pool: Pool, target_vectors: np.ndarray, pool_vectors: np.ndarray,
         aggregate: str = "vote") -> list[Ranked]:
  """Every candidate of `pool`, best first; vectors are [T, H] and [sum of templates, H]."""
  owners = np.concatenate([np.full(len(c.instructions), i)
                           for i, c in enumerate(pool.candidates)])
  similarity = target_vectors @ pool_vectors.T  # [T, C] cosines (unit vectors)
  n = len(pool.candidates)
  scores = aggregate_lib.dataset_scores(similarity, owners, n, aggregate)
  means = aggregate_lib.dataset_scores(similarity, owners, n, "mean")
  maxes = aggregate_lib.dataset_scores(similarity, owners, n, "max")
  order = aggregate_lib.ranking(scores, means, [c.dataset for c in pool.candidates])
  return [Ranked(pool.candidates[i].dataset, pool.candidates[i].cluster, float(scores[i]),
                 float(means[i]), float(maxes[i]), len(pool.candidates[i].instructions))
          for i in order]


def select(target: Target, pool: Pool, encoder, k: int = DEFAULT_K,
           aggregate: str = "vote", encoder_spec: str | None = None,
           cache_dir="default", progress: bool = False) -> Selection:
  """Rank `pool` for `target` with `encoder` and keep the top k datasets."""
  if aggregate not in aggregate_lib.AGGREGATES:
    raise SelectionError(f"--aggregate must be one of {aggregate_lib.AGGREGATES}, "
                         f"got {aggregate!r}")
  if k < 1:
    raise SelectionError(f"--k must be at least 1, got {k}")
  if k > len(pool.candidates):
    raise SelectionError(f"--k {k} but pool {pool.name!r} has only {len(pool.candidates)} "
                         "candidate datasets")
  target_texts = [i.text for i in target.instructions]
  pool_texts = [i.text for c in pool.candidates for i in c.instructions]
  vectors = embed_instructions(encoder, target_texts + pool_texts, cache_dir, progress)
  ranking = rank(target, pool, vectors[:len(target_texts)], vectors[len(target_texts):],
                 aggregate)
  by_dataset = {c.dataset: c for c in pool.candidates}
  tasks = tuple(t for r in ranking[:k] for t in by_dataset[r.dataset].tasks)
  default = encoder_spec in (None, "", "default")
  name = mixture_name(target.slug, pool.name, k, aggregate,
                      "" if default else encoder.encoder_id[:8])
  return Selection(
      name=name, target=target.spec, target_slug=target.slug, target_dataset=target.dataset,
      target_cluster=target.cluster, pool=pool.name, k=k, aggregate=aggregate,
      encoder=encoder.name, encoder_id=encoder.encoder_id,
      encoder_spec=None if default else encoder_spec, ranking=tuple(ranking), tasks=tasks,
      created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


# ----------------------------------------------------------- mixtures and the store

def register(selection: Selection, where: str = "") -> str:
  """Register the selection's mixture; SelectionError if a task of it is not registered."""
  import seqio

  from xlt.data import template_tasks
  _registered_tasks()
  missing = [n for n, _ in selection.tasks if n not in seqio.TaskRegistry.names()]
  if missing:
    raise SelectionError(
        f"{where or selection.name}: {len(missing)} of its tasks are not registered here, "
        f"e.g. {missing[0]!r}; configure the same data and templates as when it was made "
        "(docs/data.md)")
  template_tasks.add_mixture(selection.name, [list(t) for t in selection.tasks])
  return selection.name


def store_dir() -> pathlib.Path:
  """$XLT_INSTA_DIR, else $XLT_CACHE_DIR/insta/selections (default ~/.cache/xlt)."""
  if os.environ.get(STORE_ENV_VAR):
    return pathlib.Path(os.environ[STORE_ENV_VAR])
  return cache_lib.cache_root() / "insta" / "selections"


def store_path(name: str) -> pathlib.Path:
  return store_dir() / (name.removeprefix(PREFIX).replace("/", "__") + ".json")


def write_json(selection: Selection, path: str | os.PathLike) -> pathlib.Path:
  """Write atomically (temporary file, then rename): a reader never sees half a file."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False,
                                   encoding="utf-8") as f:
    json.dump(selection.to_json(), f, indent=1, ensure_ascii=False)
    f.write("\n")
  os.replace(f.name, path)
  return path


def read_json(path: str | os.PathLike) -> Selection:
  path = pathlib.Path(path)
  try:
    data = json.loads(path.read_text(encoding="utf-8"))
  except FileNotFoundError:
    raise
  except (OSError, json.JSONDecodeError) as e:
    raise SelectionError(f"{path}: cannot read the selection ({e})") from None
  return Selection.from_json(data, str(path))


def save(selection: Selection) -> pathlib.Path:
  """Into the store, keyed by mixture name; the same name and result rewrite it."""
  return write_json(selection, store_path(selection.name))


def register_stored() -> list[str]:
  """Register every selection in the store whose tasks exist here (on `import tasks`)."""
  folder = store_dir()
  names = []
  for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
    try:
      names.append(register(read_json(path), str(path)))
    except SelectionError as e:
      log.debug("not registering %s: %s", path, e)
  return names


def write_beside_run(name: str, model_dir: str) -> None:
  """MODEL_DIR/insta_selection.json: the selection a run trained on, to register it again."""
  from xlt import run_paths
  path = store_path(name)
  if not path.is_file():
    return
  target = run_paths.resolve(run_paths.join(model_dir, BESIDE_RUN))
  target.parent.mkdir(parents=True, exist_ok=True)
  target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")


def resolve_mixture(name: str, progress: bool = True) -> str:
  """Make `insta/...` exist: from the store, or selected now with the default encoder."""
  match = NAME_RE.match(name)
  if not match:
    raise SelectionError(
        f"{name!r} is not an INSTA mixture name: insta/<target>/<pool>/top<k>, optionally "
        "_mean or _max, then _enc<id> (names come from `xlt select`)")
  path = store_path(name)
  if path.is_file():
    return register(read_json(path), str(path))
  if match["encoder"] or match["target"].startswith("text_"):
    raise SelectionError(
        f"mixture {name!r} is not in the selection store {store_dir()}: it was made with "
        "another encoder or from free text; run the `xlt select` that made it again, or "
        f"copy its JSON ({BESIDE_RUN} in the run that trained on it) into {store_dir()}")
  from xlt.insta.encoder import SentenceEncoder
  target = resolve_target(match["target"])
  pool = resolve_pool(match["pool"], exclude=target.dataset)
  encoder = SentenceEncoder.load(None)
  selection = select(target, pool, encoder, int(match["k"]), match["aggregate"] or "vote",
                     progress=progress)
  if selection.name != name:  # e.g. the target was given as a task name
    raise SelectionError(f"{name!r}: the target resolves to {selection.name!r}; use that name")
  save(selection)
  log.info("INSTA selection %s:\n%s", name, selection.table(rows=selection.k))
  return register(selection)
