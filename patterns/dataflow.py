"""Where argument values come from: competing source hypotheses with support counts.

For each (application, tool, argument path) a small set of hypotheses is kept.
Each new call scores every hypothesis (would it have produced this value?) and
adds the sources that explain the value now. Hypotheses that keep predicting
right rise; coincidences and values that change fall and are evicted.

A source (a hashable tuple, so it can be counted and saved) is one of:
  ("const", json)                                  the same value every time
  ("res", tool, back, path, transform)             a value in an earlier result
  ("arg", tool, back, path, transform)             an earlier call's argument
  ("user", back, "anchor", (words, skip, n), transform)
                                                   the n words that start `skip` words after
                                                   `words` in a user message
  ("user", back, "shape", (regex, k), transform)   the k-th match of the value's shape
  ("user", back, "quoted", k, transform)           the k-th quoted string in a user message
  ("user", back, "proper", k, transform)           the k-th run of capitalized words (a name:
                                                   "San Francisco") not opening a sentence
  ("user", back, "between", (words, after), transform)
                                                   the words after `words` up to the word
                                                   `after` ("" : up to the clause's end)
  ("ctx", back, mode, param, transform)            any of the user modes, in the context a client
                                                   added to the user's messages (context.py)
  ("typed", back, kind, k, format)                 the k-th date, time, number or e-mail in a
                                                   user message (typed.extract: "next Friday",
                                                   "8 AM", "four"), written in `format`
  ("each", part, tool, path, transform)            the value at `path` in the arguments or result
                                                   of each call of `tool` in the latest turn that
                                                   made several: one call per earlier call (a map
                                                   over parallel calls)
  ("iter", tool, back, path, transform, target)    the first element of a result list not yet
                                                   used as the target (tool, argument): a
                                                   list walked one call per turn
A path step "*" fans out over a list: the hypothesis predicts one call per element.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from prefire.patterns.canonical import canonical
from prefire.patterns.memory import SessionMemory
from prefire.patterns.typed import KINDS, extract_kind, formats_of, parse_as, render
from prefire.patterns.values import WILDCARD, Path, apply, at_path, transform_between

Source = tuple[Any, ...]

MAX_HYPOTHESES = 10
MAX_FRESH = 3  # untried sources of one argument that take part in a prediction
MAX_CONSTANT = 1024  # canonical bytes of a value learned as a constant
AGE_AT = 64.0  # trials of the leading source after which all counts are halved
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
    resolved = mem.text_resolved_now() if source[0] in _TEXT_KINDS else mem.resolved_now()
    value = resolved.get(source, _UNRESOLVED)
    if value is _UNRESOLVED:
        value = resolved[source] = _resolve(source, mem)
    return value


_UNRESOLVED = object()
# sources that read only the user's words, the client's context, the day, or nothing
_TEXT_KINDS = frozenset({"user", "ctx", "typed", "const"})


def _resolve(source: Source, mem: SessionMemory) -> Any:
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
    if kind in ("user", "ctx"):
        _, back, mode, param, transform = source
        texts = mem.user_texts if kind == "user" else mem.context_texts
        if back >= len(texts):
            return None
        text = texts[-1 - back]
        if mode == "anchor":
            span = _anchor_span(text, *param)
        elif mode == "between":
            span = _between_span(text, *param)
        elif mode == "proper":
            names = _proper_names(text)
            span = names[param] if param < len(names) else None
        elif mode == "shape":
            span = _shape_span(text, *param)
        else:
            quoted = _quoted(text)
            span = quoted[param] if param < len(quoted) else None
        return None if span is None else apply(transform, span)
    if kind == "typed":
        _, back, what, k, fmt = source
        if back >= len(mem.user_texts):
            return None
        found = extract_kind(mem.user_texts[-1 - back], mem.today, what)
        return render(what, found[k], fmt) if k < len(found) else None
    if kind == "each":
        _, part, tool, path, transform = source
        values = []
        for rec in mem.last_turn_calls(tool):
            if part == "res" and not rec.has_result:
                return None
            value = at_path(rec.result if part == "res" else rec.arguments, path)
            value = None if value is None else apply(transform, value)
            if value is not None:
                values.append(value)
        return values if len(values) > 1 else None
    if kind == "iter":
        _, tool, back, path, transform, target = source
        items = resolve(("res", tool, back, path, transform), mem)
        if not isinstance(items, list):
            return None
        used = mem.used.get(target, set())
        return next((v for v in items if canonical(v) not in used), None)
    return None


_QUOTED = re.compile(r"(?<!\w)'([^'\n]{1,200}?)'(?!\w)|\"([^\"\n]{1,200}?)\"")


@functools.lru_cache(maxsize=256)
def _quoted(text: str) -> list[str]:
    return [a or b for a, b in _QUOTED.findall(text)]


def discover(value: Any, mem: SessionMemory, target: tuple[str, str] | None = None) -> list[Source]:
    """Sources that explain `value` in this session, most specific first. `target`
    (tool, argument name) is the argument being explained; list walks need it."""
    found: list[Source] = []
    for rec, ref, seen in mem.lookup(value):
        transform = transform_between(seen, value)
        if transform is False:
            continue
        back = mem.back_of(rec)
        found.append((ref.part, rec.name, back, ref.path, transform))
        latest = mem.last_turn_calls(rec.name)
        if len(latest) > 1 and rec.turn == latest[0].turn:
            found.append(("each", ref.part, rec.name, ref.path, transform))
        fan = _fan_out(ref.path)
        if fan is not None and ref.part == "res":
            found.append((ref.part, rec.name, back, fan, transform))
            if target is not None:
                found.append(("iter", rec.name, back, fan, transform, target))
    found += _user_sources(value, mem.user_texts, "user")
    found += _user_sources(value, mem.context_texts, "ctx")
    found += _typed_sources(value, mem)
    constant = canonical(value)
    if len(constant) <= MAX_CONSTANT:  # hypotheses are kept by the thousand
        found.append(("const", constant.decode()))
    return list(dict.fromkeys(found))


def _fan_out(path: Path) -> Path | None:
    """The path with its last list index made a wildcard, or None without one."""
    for i in range(len(path) - 1, -1, -1):
        if isinstance(path[i], int):
            return (*path[:i], WILDCARD, *path[i + 1 :])
    return None


def _user_sources(value: Any, texts: Sequence[str], kind: str) -> list[Source]:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return []
    target = str(value)
    if not target.strip() or len(target) > 200:
        return []
    out: list[Source] = []
    for back, text in enumerate(reversed(texts)):
        pos = text.casefold().find(target.casefold())
        if pos < 0:
            continue
        span = text[pos : pos + len(target)]
        transform = transform_between(span, value)
        if transform is False:
            continue
        before = [w.casefold() for w in _WORD.findall(text[:pos])[-3:]]
        nwords = len(_WORD.findall(span))
        if 0 < nwords <= _MAX_SPAN_WORDS:
            # anchors: the two words right before, the one word right before, and one
            # word two or three back (so "are Yusuf Rossi" finds Rossi from "are")
            anchors = [(tuple(before[-2:]), 0), (tuple(before[-1:]), 0)]
            anchors += [((before[-1 - skip],), skip) for skip in (1, 2) if len(before) > skip]
            for words, skip in dict.fromkeys(anchors):
                out.append((kind, back, "anchor", (words, skip, nwords), transform))
            if nwords > 1 and before:
                # a phrase of any length between cue words: "find the <...> and"
                after = _next_word(text, pos + len(target))
                for words in dict.fromkeys((tuple(before[-2:]), tuple(before[-1:]))):
                    out.append((kind, back, "between", (words, after), transform))
        for shape in dict.fromkeys((_shape_of(span), _id_shape_of(span))):
            if shape:
                occurrence = sum(1 for m in re.finditer(shape, text) if m.start() < pos)
                out.append((kind, back, "shape", (shape, occurrence), transform))
        names = [n.casefold() for n in _proper_names(text)]
        if target.casefold() in names:
            out.append((kind, back, "proper", names.index(target.casefold()), transform))
        quoted = [q.casefold() for q in _quoted(text)]
        if target.casefold() in quoted:
            out.append((kind, back, "quoted", quoted.index(target.casefold()), transform))
        break
    return out


@functools.lru_cache(maxsize=256)
def _words(text: str) -> tuple[list[re.Match[str]], list[str], dict[str, list[int]]]:
    """A user text's words, casefolded, and where each word stands."""
    matches = list(_WORD.finditer(text))
    words = [m.group().casefold() for m in matches]
    where: dict[str, list[int]] = {}
    for i, w in enumerate(words):
        where.setdefault(w, []).append(i)
    return matches, words, where


def _anchor_span(text: str, anchor: tuple[str, ...], skip: int, nwords: int) -> str | None:
    matches, words, where = _words(text)
    k = len(anchor)
    if k == 0:
        starts = [skip]
    else:
        starts = [
            i + 1 + skip
            for i in where.get(anchor[-1], ())
            if tuple(words[i + 1 - k : i + 1]) == anchor
        ]
    for i in starts:
        if i >= k and i + nwords <= len(words):
            start, end = matches[i].start(), matches[i + nwords - 1].end()
            return text[start:end].strip(".,;:!?'\"")
    return None


_PROPER = re.compile(r"(?<![\w'])[A-Z][\w\-]*(?:[ \t]+[A-Z][\w\-]*)*")


@functools.lru_cache(maxsize=256)
def _proper_names(text: str) -> list[str]:
    """Runs of capitalized words, a sentence's first word and "I" left out."""
    out = []
    for m in _PROPER.finditer(text):
        words = m.group().split()
        before = text[max(0, m.start() - 8) : m.start()].rstrip(" \t\"'")
        if not before or before[-1] in ".!?:;\n":  # a sentence's first word
            words = words[1:]
        words = [w for w in words if w != "I"] if len(words) == 1 else words
        if words:
            out.append(" ".join(words))
    return out


_CLAUSE_END = re.compile(r"[.,;:!?()\n]")


def _next_word(text: str, end: int) -> str:
    """The word right after position `end` in the same clause, casefolded, or ""."""
    m = _WORD.search(text, end)
    if m is None or _CLAUSE_END.search(text, end, m.start()):
        return ""
    return m.group().casefold()


def _between_span(text: str, anchor: tuple[str, ...], after: str) -> str | None:
    matches, words, where = _words(text)
    k = len(anchor)
    for i in where.get(anchor[-1], ()) if k else ():
        if tuple(words[i + 1 - k : i + 1]) != anchor:
            continue
        last, found_after = None, False
        for j in range(i + 1, min(len(words), i + 1 + 2 * _MAX_SPAN_WORDS)):
            if _CLAUSE_END.search(text, matches[j - 1].end(), matches[j].start()):
                break
            if after and words[j] == after:
                found_after = True
                break
            last = j
        if last is not None and found_after == bool(after):
            return text[matches[i + 1].start() : matches[last].end()].strip(".,;:!?'\"")
    return None


def _typed_sources(value: Any, mem: SessionMemory) -> list[Source]:
    """Typed values in the user's words that this value writes: "2024-05-26" from
    "May 26", "08:00" from "8 AM", 4 from "four"."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return []
    out: list[Source] = []
    for kind in KINDS:
        if kind == "number" and isinstance(value, str):
            continue  # digits in text are found as spans; words as numbers are for numbers
        if parse_as(kind, value) is None:
            continue
        for back, text in enumerate(reversed(mem.user_texts)):
            found = extract_kind(text, mem.today, kind)
            for k, typed in enumerate(found):
                fmts = formats_of(kind, typed, value)
                out += [("typed", back, kind, k, fmt) for fmt in fmts[:2]]
            if out:
                return out
    return out


def _shape_of(span: str) -> str:
    """A regex for strings that look like `span`: digit runs by length, letter runs by case."""
    out: list[str] = []
    for m in re.finditer(r"\d+|[A-Z]+[a-z]*|[a-z]+|\s+|.", span):
        tok = m.group()
        if tok.isdigit():
            out.append(r"\d+")
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


_ID = re.compile(r"[A-Z0-9]+|[a-z0-9]+")


def _id_shape_of(span: str) -> str | None:
    """For an identifier mixing letters and digits ("JMO1MG", "PEP4E0", "ab12cd"), a
    regex for any token of the same length and alphabet with a letter and a digit, so
    the next locator matches whatever its letters and digits."""
    m = _ID.fullmatch(span)
    if m is None or span.isdigit() or span.isalpha():
        return None
    cls = "A-Z" if span.upper() == span else "a-z"
    return rf"(?<![\w])(?=[{cls}]*\d)(?=\d*[{cls}])[{cls}0-9]{{{len(span)}}}(?![\w])"


def _shape_span(text: str, shape: str, occurrence: int) -> str | None:
    for i, m in enumerate(re.finditer(shape, text)):
        if i == occurrence:
            return m.group()
    return None


class ArgHypotheses:
    """The competing sources for one (application, tool, argument path)."""

    __slots__ = ("fresh", "ranked", "stats")

    def __init__(self) -> None:
        self.stats: dict[Source, Stat] = {}
        # tried sources with their scores, best first; refreshed whenever the stats change
        self.ranked: list[tuple[Source, float, bool]] = []
        # sources seen explaining one value and not tried since, most specific first
        self.fresh: list[Source] = []

    def observe(
        self,
        value: Any,
        mem: SessionMemory,
        explained_by: list[Source],
        first_trial: Callable[[Source, bool], None] | None = None,
    ) -> None:
        """Score every source on this call's value; `explained_by` (from `discover`) are
        the sources that explain it now. `first_trial(source, held)` hears how each
        source seen once fared at its first trial (how far one example can be trusted)."""
        for source, stat in self.stats.items():
            predicted = resolve(source, mem)
            held = _agrees(predicted, value, source)
            if first_trial is not None and stat.trials == 0:
                first_trial(source, held)
            stat.trials += 1
            if held:
                stat.hits += 1
        # A new source is not yet evidence: it was picked because it matched.
        # It counts from the next call on.
        for source in explained_by:
            if source not in self.stats:
                self.stats[source] = Stat()
        self.rank()
        if self.ranked and self.stats[self.ranked[0][0]].trials > AGE_AT:
            # halve the counts so that a source that stops working loses its lead in time
            for stat in self.stats.values():
                stat.hits /= 2
                stat.trials /= 2
            self.rank()

    def rank(self) -> None:
        """Keep the best MAX_HYPOTHESES sources and order the tried ones, best first."""
        order = sorted(self.stats.items(), key=lambda kv: (kv[1].score, kv[1].trials), reverse=True)
        if len(order) > MAX_HYPOTHESES:
            order = order[:MAX_HYPOTHESES]
            self.stats = dict(order)
        self.ranked = [(src, st.score, _fans_out(src)) for src, st in order if st.trials >= 1]
        self.fresh = [src for src, st in order if st.trials == 0]

    def values(
        self, mem: SessionMemory, limit: int = 2, prior: Callable[[Source], float] | None = None
    ) -> list[tuple[Any, float, bool]]:
        """Up to `limit` distinct predicted values: (value, probability, fan-out).

        Hypotheses are tried best first; a later one only matters when the ones
        before it are wrong, so each adds score x P(all before it wrong) to the
        value it gives. The probabilities of one argument's values sum to <= 1.
        With `prior`, a source seen once and not tried yet takes part with the score
        `prior` gives it (learn from one example).
        """
        chain = self.ranked
        if prior is not None and self.fresh:
            # the few likeliest: a long user text offers many sources for one value
            fresh = sorted(
                ((src, prior(src), _fans_out(src)) for src in self.fresh), key=lambda x: -x[1]
            )[:MAX_FRESH]
            chain = sorted([*chain, *fresh], key=lambda x: -x[1])
        found: dict[Any, list[Any]] = {}  # value's identity -> [value, probability, fan-out]
        remaining = 1.0
        for source, score, fan in chain:
            value = resolve(source, mem)
            if value is None:
                continue
            key = identity(value)
            p = score * remaining
            remaining -= p
            if key in found:
                found[key][1] += p
            else:
                found[key] = [value, p, fan]
            if len(found) >= limit or remaining < 0.01:
                break
        return sorted(((v, p, fan) for v, p, fan in found.values()), key=lambda x: -x[1])


def _fans_out(source: Source) -> bool:
    return source[0] == "each" or (source[0] == "res" and WILDCARD in source[3])


def identity(value: Any) -> Any:
    """Equal for equal JSON values: the value with its type for strings, ints and
    booleans (1 and True stay apart), canonical JSON otherwise."""
    if type(value) in (str, int, bool):
        return type(value), value
    return canonical(value)


def _agrees(predicted: Any, value: Any, source: Source) -> bool:
    if predicted is None:
        return False
    if _fans_out(source):
        return isinstance(predicted, list) and value in predicted
    return type(predicted) is type(value) and predicted == value
