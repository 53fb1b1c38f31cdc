"""What INSTA embeds: the instruction of a template, without any instance.

The instruction of a template is its input side (promptsource: the Jinja before `|||`)
with the data taken out: `{% ... %}` tags and `{# ... #}` comments are dropped and each
`{{ expression }}` becomes the name of the field it reads, in words ("{{premise}}" ->
"premise", "{{ answer_choices | join(', ') }}" -> "answer choices"). The field names stay
because they say what the instruction is about; the rows never enter (instruction-only).

A target is a dataset (its templates in one language), or free instruction text; a pool
is the datasets of a SeqIO mixture with the templates of their tasks.
"""
from __future__ import annotations

import dataclasses
import re

from xlt.data.templates import Template, split_choices

_COMMENT = re.compile(r"\{#.*?#\}", re.S)
_STATEMENT = re.compile(r"\{%.*?%\}", re.S)
_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.S)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def instruction_text(template: Template) -> str:
  """The template's instruction with fields as words; '' if it has no text at all."""
  source = split_choices(template.jinja)[0] if template.jinja is not None else template.input
  return jinja_to_instruction(source)


def jinja_to_instruction(source: str) -> str:
  """'{{premise}} Does it follow that "{{ hypothesis }}"?' -> 'premise Does it follow
  that "hypothesis"?'"""
  text = _STATEMENT.sub(" ", _COMMENT.sub(" ", source))
  text = _EXPRESSION.sub(_field_in_text, text)
  text = re.sub(r"[ \t]+", " ", text)
  text = re.sub(r" *\n[ \n]*", "\n", text)
  return text.strip()


def _field_in_text(match: re.Match) -> str:
  """The field's words, spaced from letters, digits or another field right next to it."""
  words = _field_words(match.group(1))
  before = match.string[match.start() - 1:match.start()]
  after = match.string[match.end():match.end() + 1]
  return ((" " if before.isalnum() or before == "}" else "") + words +
          (" " if after.isalnum() or after == "{" else ""))


def _field_words(expression: str) -> str:
  """The first name an expression reads, underscores as spaces; 'field' if none."""
  match = _IDENTIFIER.search(expression)
  return match.group(0).replace("_", " ").strip() if match else "field"


@dataclasses.dataclass(frozen=True)
class Instruction:
  """One template's instruction, with where it came from."""

  dataset: str   # catalogue key, or "" for free text
  template: str  # template name
  text: str


def instructions_of(templates: list[Template]) -> list[Instruction]:
  """One Instruction per distinct template (by dataset, name), empty texts dropped."""
  seen: set[tuple[str, str]] = set()
  out = []
  for template in templates:
    key = (template.dataset, template.name)
    text = instruction_text(template)
    if key in seen or not text:
      continue
    seen.add(key)
    out.append(Instruction(template.dataset, template.name, text))
  return out
