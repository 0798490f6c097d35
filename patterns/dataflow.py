"""Where argument values come from: competing source hypotheses with support counts.

For each (application, tool, argument path) a small set of hypotheses is kept.
Each new call scores every hypothesis (would it have produced this value?) and
adds the sources that explain the value now. Hypotheses that keep predicting
right rise; coincidences and values that change fall and are evicted.

A source (a hashable tuple, so it can be counted and saved) is one of:
  ("const", json)                                  the same value every time
  ("res", tool, back, path, transform)             a value in an earlier result
  ("arg", tool, back, path, transform)             an earlier call's argument
  ("user", back, "anchor", (words, n), transform)  the n words after `words` in a user message
  ("user", back, "shape", (regex, k), transform)   the k-th match of the value's shape
A path step "*" fans out over a list: the hypothesis predicts one call per element.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from prefire.patterns.canonical import canonical
from prefire.patterns.memory import SessionMemory
from prefire.patterns.values import WILDCARD, Path, apply, at_path, transform_between

Source = tuple[Any, ...]

MAX_HYPOTHESES = 10
_WORD = re.compile(r"[\w@.\-#/:+']+", re.UNICODE)
_MAX_SPAN_WORDS = 6


@dataclass(slots=True)
class Stat:
    hits: float = 0.0
    trials: float = 0.0

    @property
    def score(self) -> float:
        # Laplace: one success in one trial is promising, not certain.
        return (self.hits + 0.5) / (self.trials + 1.5)


def resolve(source: Source, mem: SessionMemory) -> Any:
    """The value `source` gives in this session now; a list for fan-out; None if it cannot."""
    kind = source[0]
    if kind == "const":
        return orjson.loads(source[1])
    if kind in ("res", "arg"):
        _, tool, back, path, transform = source
        rec = mem.nth_recent(tool, back)
        if rec is None or (kind == "res" and not rec.has_result):
            return None
        value = at_path(rec.result if kind == "res" else rec.arguments, path)
        if WILDCARD in path:
            if not isinstance(value, list):
                return None
            out = [apply(transform, v) for v in value]
            return [v for v in out if v is not None] or None
        return None if value is None else apply(transform, value)
    if kind == "user":
        _, back, mode, param, transform = source
        if back >= len(mem.user_texts):
            return None
        text = mem.user_texts[-1 - back]
        span = _anchor_span(text, *param) if mode == "anchor" else _shape_span(text, *param)
        return None if span is None else apply(transform, span)
    return None


def discover(value: Any, mem: SessionMemory) -> list[Source]:
    """Sources that explain `value` in this session, most specific first."""
    found: list[Source] = []
    for rec, ref, seen in mem.lookup(value):
        transform = transform_between(seen, value)
        if transform is False:
            continue
        back = mem.back_of(rec)
        found.append((ref.part, rec.name, back, ref.path, transform))
        fan = _fan_out(ref.path)
        if fan is not None and ref.part == "res":
            found.append((ref.part, rec.name, back, fan, transform))
    found += _user_sources(value, mem)
    found.append(("const", canonical(value).decode()))
    return list(dict.fromkeys(found))


def _fan_out(path: Path) -> Path | None:
    """The path with its last list index made a wildcard, or None without one."""
    for i in range(len(path) - 1, -1, -1):
        if isinstance(path[i], int):
            return path[:i] + (WILDCARD,) + path[i + 1 :]
    return None


def _user_sources(value: Any, mem: SessionMemory) -> list[Source]:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return []
    target = str(value)
    if not target.strip() or len(target) > 200:
        return []
    out: list[Source] = []
    for back, text in enumerate(reversed(mem.user_texts)):
        pos = text.casefold().find(target.casefold())
        if pos < 0:
            continue
        span = text[pos : pos + len(target)]
        transform = transform_between(span, value)
        if transform is False:
            continue
        words = _WORD.findall(text[:pos])[-2:]
        nwords = len(_WORD.findall(span))
        if 0 < nwords <= _MAX_SPAN_WORDS:
            out.append(
                ("user", back, "anchor", (tuple(w.casefold() for w in words), nwords), transform)
            )
        shape = _shape_of(span)
        occurrence = sum(1 for m in re.finditer(shape, text) if m.start() < pos)
        out.append(("user", back, "shape", (shape, occurrence), transform))
        break
    return out


def _anchor_span(text: str, anchor: tuple[str, ...], nwords: int) -> str | None:
    matches = list(_WORD.finditer(text))
    words = [m.group().casefold() for m in matches]
    k = len(anchor)
    for i in range(len(words) - nwords + 1):
        if i >= k and tuple(words[i - k : i]) == anchor or (k == 0 and i == 0):
            start, end = matches[i].start(), matches[i + nwords - 1].end()
            return text[start:end].strip(".,;:!?'\"")
    return None


def _shape_of(span: str) -> str:
    """A regex for strings that look like `span`: digit runs by length, letter runs by case."""
    out: list[str] = []
    for m in re.finditer(r"\d+|[A-Z]+[a-z]*|[a-z]+|\s+|.", span):
        tok = m.group()
        if tok.isdigit():
            out.append(rf"\d{{{len(tok)}}}")
        elif tok[0].isupper() and tok[1:].islower():
            out.append("[A-Z][a-z]+")
        elif tok.isupper():
            out.append("[A-Z]+" if len(tok) > 1 else re.escape(tok))
        elif tok.islower():
            out.append("[a-z]+")
        elif tok.isspace():
            out.append(r"\s+")
        else:
            out.append(re.escape(tok))
    return r"(?<![\w])" + "".join(out) + r"(?![\w])"


def _shape_span(text: str, shape: str, occurrence: int) -> str | None:
    for i, m in enumerate(re.finditer(shape, text)):
        if i == occurrence:
            return m.group()
    return None


class ArgHypotheses:
    """The competing sources for one (application, tool, argument path)."""

    __slots__ = ("stats",)

    def __init__(self) -> None:
        self.stats: dict[Source, Stat] = {}

    def observe(self, value: Any, mem: SessionMemory) -> None:
        for source, stat in self.stats.items():
            predicted = resolve(source, mem)
            stat.trials += 1
            if _agrees(predicted, value, source):
                stat.hits += 1
        # A new source is not yet evidence: it was picked because it matched.
        # It counts from the next call on.
        for source in discover(value, mem):
            if source not in self.stats:
                self.stats[source] = Stat()
        if len(self.stats) > MAX_HYPOTHESES:
            ranked = sorted(
                self.stats.items(), key=lambda kv: (kv[1].score, kv[1].trials), reverse=True
            )
            self.stats = dict(ranked[:MAX_HYPOTHESES])

    def values(self, mem: SessionMemory, limit: int = 2) -> list[tuple[Any, float, bool]]:
        """Up to `limit` distinct predicted values: (value, probability, fan-out).

        Hypotheses are tried best first; a later one only matters when the ones
        before it are wrong, so each adds score x P(all before it wrong) to the
        value it gives. The probabilities of one argument's values sum to <= 1.
        """
        ranked = sorted(self.stats.items(), key=lambda kv: (kv[1].score, kv[1].trials), reverse=True)
        found: dict[bytes, list[Any]] = {}  # canonical value -> [value, probability, fan-out]
        remaining = 1.0
        for source, stat in ranked:
            if stat.trials < 1 or remaining < 0.01:
                continue
            value = resolve(source, mem)
            if value is None:
                continue
            fan = source[0] == "res" and WILDCARD in source[3]
            key = canonical(value)
            p = stat.score * remaining
            remaining -= p
            if key in found:
                found[key][1] += p
            elif len(found) < limit:
                found[key] = [value, p, fan]
        return [(v, p, fan) for v, p, fan in sorted(found.values(), key=lambda x: -x[1])]

    def age(self, factor: float) -> None:
        for stat in self.stats.values():
            stat.hits *= factor
            stat.trials *= factor


def _agrees(predicted: Any, value: Any, source: Source) -> bool:
    if predicted is None:
        return False
    if source[0] == "res" and WILDCARD in source[3]:
        return isinstance(predicted, list) and value in predicted
    return type(predicted) is type(value) and predicted == value
