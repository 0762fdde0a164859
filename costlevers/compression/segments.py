"""A compressible text cut into passages and the units a compressor keeps or drops, verbatim.

Extractive compression keeps whole sentences in their original order, so every kept sentence is
a verbatim substring of the original (a model quotes it, an evidence check finds it). Passages
are blocks separated by blank lines; a passage's first line is its title when it reads as one
(``Title: ...``, a Markdown heading, a short line without closing punctuation), and a kept
passage always keeps its title. Structure that breaks when cut is one atomic unit, kept or dropped
whole: a fenced code block (blank lines inside included), a block that parses as JSON, a table.
A list keeps its items as units, one line each, so a kept item is still a list item.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["Passage", "Unit", "join_kept", "split_passages"]

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_HEADING = re.compile(r"^(#{1,6} |Title:|Document\b|Passage\b|Source\b)")
_LIST_ITEM = re.compile(r"^\s*([-*+•]|\d{1,3}[.)])\s+")
_FENCE = re.compile(r"^\s*(```|~~~)")
_MAX_TITLE_CHARS = 120


@dataclass(frozen=True)
class Unit:
    """One keepable piece: a sentence, a list item, or an atomic block (code, JSON, table)."""

    text: str
    #: The whitespace before it inside its passage ("" for the first), put back when the unit
    #: before it is kept too.
    sep: str
    atomic: bool = False


@dataclass(frozen=True)
class Passage:
    title: str | None
    units: tuple[Unit, ...]

    @property
    def body(self) -> str:
        return "".join(u.sep + u.text for u in self.units)


def split_passages(text: str) -> list[Passage]:
    """The passages of ``text`` in order; joining every unit of every passage gives ``text`` back
    up to the whitespace between passages."""
    return [_passage(block) for block in _blocks(text) if block.strip()]


def join_kept(passages: list[Passage], kept: set[tuple[int, int]], passage_sep: str = "\n\n") -> str:
    """The text of the kept units (``(passage, unit)`` pairs) in their original order, each kept
    passage under its title; consecutive kept units keep their original separator."""
    out: list[str] = []
    for p_index, passage in enumerate(passages):
        pieces: list[str] = []
        previous_kept = False
        for u_index, unit in enumerate(passage.units):
            if (p_index, u_index) in kept:
                pieces.append((unit.sep if previous_kept else ("\n" if pieces and "\n" in unit.sep else " " if pieces else "")) + unit.text)
                previous_kept = True
            else:
                previous_kept = False
        if pieces:
            body = "".join(pieces)
            out.append(f"{passage.title}\n{body}" if passage.title is not None else body)
    return passage_sep.join(out)


def _blocks(text: str) -> list[str]:
    """Blank-line separated blocks, with a fenced code block whole even across blank lines."""
    blocks: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and not line.strip():
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def _passage(block: str) -> Passage:
    lines = block.split("\n")
    title = None
    if len(lines) > 1 and _is_title(lines[0]):
        title, block = lines[0], "\n".join(lines[1:])
    if _is_atomic(block):
        return Passage(title, (Unit(block, "", atomic=True),))
    units: list[Unit] = []
    lines = block.split("\n")
    if all(_LIST_ITEM.match(line) or line.startswith((" ", "\t")) for line in lines if line.strip()) and _LIST_ITEM.match(lines[0]):
        for line in lines:  # one unit per item; a continuation line stays with its item
            if units and not _LIST_ITEM.match(line):
                units[-1] = Unit(units[-1].text + "\n" + line, units[-1].sep)
            else:
                units.append(Unit(line, "\n" if units else ""))
        return Passage(title, tuple(units))
    position, sep = 0, ""
    for match in _SENTENCE_END.finditer(block):
        end = match.start() + len(match.group(0).rstrip())
        units.append(Unit(block[position:end], sep))
        position, sep = match.end(), block[end:match.end()]
    units.append(Unit(block[position:], sep))
    return Passage(title, tuple(u for u in units if u.text))


def _is_title(line: str) -> bool:
    stripped = line.strip()
    if not stripped or len(stripped) > _MAX_TITLE_CHARS or _LIST_ITEM.match(line) or _FENCE.match(line):
        return False
    return bool(_HEADING.match(stripped)) or stripped[-1] not in ".!?,;\"'"


def _is_atomic(block: str) -> bool:
    stripped = block.strip()
    if _FENCE.match(stripped) or stripped.startswith("|"):
        return True
    if stripped[:1] in "{[":
        try:
            json.loads(stripped)
        except ValueError:
            return False
        return True
    return False
