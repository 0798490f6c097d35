"""Schema priors: argument sources proposed from the tools' JSON schemas before any
evidence, each weighted by how often proposals of its kind came true.

An argument named like a field of an earlier result (`hotel_id` and
`hotels[0].hotel_id`, `place_id` and `places[0].id`) is proposed from that field;
a date argument from the dates in the user's words, written as the schema says;
an enum member the user wrote, a schema default, a lone enum member as constants.
Which kinds are worth how much is learned from every application together: the
weights hold counts per kind, never a value, so they may cross scopes.
Learned sources (dataflow.ArgHypotheses) come first; a prior only fills the
probability they leave, so evidence beats a coincidental name match.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from prefire.patterns.canonical import canonical
from prefire.patterns.dataflow import Source, Stat, resolve
from prefire.patterns.memory import CallRecord, SessionMemory
from prefire.patterns.schema import ArgSpec, name_words
from prefire.patterns.typed import numbers_with_words
from prefire.patterns.values import MAX_DEPTH, MAX_LEAVES, WILDCARD, Path

RECENT_RESULTS = 4  # the latest results searched for a field named like the argument
MAX_LIST = 50  # elements of a result list whose keys are read
_SEP = re.compile(r"[_\-\s]+")
_FORMATS = {"date": "%Y-%m-%d", "time": "%H:%M", "email": "as_is"}
AGE_AT = 2_000.0


def norm(name: str) -> str:
    """A name without case, separators or camel humps: "hotelId" ~ "hotel_id"."""
    return _SEP.sub("", name).casefold()


def _singular(word: str) -> str:
    w = norm(word)
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def keyed_paths(rec: CallRecord) -> dict[str, list[Path]]:
    """The record's result paths by normalized last key (and by "<parent> <key>" for a
    key under a named list or object, so `hotels[0].id` is also "hotel id")."""
    if rec.keyed is None:
        keyed: dict[str, list[Path]] = {}
        # keys only, breadth-first, at most MAX_LEAVES nodes: no leaf is serialized
        queue: list[tuple[Path, Any, str | None]] = [((), rec.result, None)]
        for path, node, parent in queue:
            if len(queue) > MAX_LEAVES or len(path) >= MAX_DEPTH:
                break
            if isinstance(node, dict):
                for k, v in node.items():
                    if not isinstance(k, str):
                        continue
                    child = (*path, k)
                    name = norm(k)
                    names = (name,) if parent is None else (name, _singular(parent) + name)
                    for n in names:
                        paths = keyed.setdefault(n, [])
                        if len(paths) < 2 and not isinstance(v, dict | list):
                            paths.append(child)
                    if isinstance(v, dict | list):
                        queue.append((child, v, k))
            elif isinstance(node, list):
                queue += [((*path, i), v, parent) for i, v in enumerate(node[:MAX_LIST])]
        rec.keyed = keyed
    return rec.keyed


def _first_and_all(path: Path) -> list[tuple[str, Path]]:
    """The path at the first element of its last list, and fanned out over that list."""
    for i in range(len(path) - 1, -1, -1):
        if isinstance(path[i], int):
            return [
                ("first", (*path[:i], 0, *path[i + 1 :])),
                ("each", (*path[:i], WILDCARD, *path[i + 1 :])),
            ]
    return [("one", path)]


def proposals(name: str, spec: ArgSpec | None, mem: SessionMemory) -> list[tuple[str, Source]]:
    """(prior kind, source) for argument `name` of a tool with this schema, strongest
    kinds first. Sources are dataflow sources, resolved the same way."""
    out: list[tuple[str, Source]] = []
    want = norm(name)
    for rec in recent_results(mem):
        keyed = keyed_paths(rec)
        matches = [("name", p) for p in keyed.get(want, ())]
        if not matches and want.endswith("id") and len(want) > 2:
            matches = [("name_id", p) for p in keyed.get("id", ())]
        for how, path in matches[:1]:
            for where, concrete in _first_and_all(path):
                out.append((f"{how}/{where}", ("res", rec.name, 0, concrete, None)))
    if spec is None:
        return out
    if spec.form in _FORMATS:
        for k in range(2):
            out.append((f"text_{spec.form}", ("typed", 0, spec.form, k, _FORMATS[spec.form])))
    if spec.enum and mem.user_texts:
        text = _folded(mem.user_texts[-1])
        for member in spec.enum:
            if isinstance(member, str) and member and _word_in(member.casefold(), text):
                out.append(("enum_text", ("const", canonical(member).decode())))
    numeric = spec.types & {"integer", "number"}
    if numeric and mem.user_texts:
        # a number the user wrote next to the argument's name: "30 gallons" for `gallon`
        words = {_singular(w) for w in name_words(name)}
        for n, before, after in numbers_with_words(mem.user_texts[-1]):
            if _singular(after) in words or _singular(before) in words:
                if "integer" not in numeric:
                    value: Any = float(n)
                elif float(n).is_integer():
                    value = int(n)
                else:
                    continue
                out.append(("number_named", ("const", canonical(value).decode())))
    if spec.types == frozenset({"boolean"}) and mem.user_texts:
        # a flag the user names ("human-readable", "dry run") is set
        named = name_words(name)
        if named and _word_in(" ".join(named), _folded(mem.user_texts[-1])):
            out.append(("bool_named", ("const", "true")))
    if len(spec.enum) == 1:
        out.append(("enum_one", ("const", canonical(spec.enum[0]).decode())))
    if spec.has_default:
        out.append(("default", ("const", canonical(spec.default).decode())))
    return out


def recent_results(mem: SessionMemory) -> list[CallRecord]:
    """The latest result of each of the RECENT_RESULTS tools called last before this
    turn, most recent first; computed once a turn."""
    resolved = mem.resolved_now()
    found = resolved.get(("recent_results",))
    if found is None:
        found = []
        tools: set[str] = set()
        for rec in reversed(mem.calls):
            if len(tools) >= RECENT_RESULTS:
                break
            if rec.has_result and rec.turn < mem.turn and rec.name not in tools:
                tools.add(rec.name)
                found.append(rec)
        resolved[("recent_results",)] = found
    return found


@functools.lru_cache(maxsize=256)
def _folded(text: str) -> str:
    """The text casefolded, "-" and "_" as spaces, padded: words are found as " w "."""
    return " " + " ".join(re.findall(r"\w+", re.sub(r"[\-_]", " ", text.casefold()))) + " "


def _word_in(words: str, folded: str) -> bool:
    """Whether `words` stand in the folded text, their "_" and "-" read as spaces (the
    member "oil_change" is written "an oil change")."""
    return _folded(words) in folded


class Priors:
    """How often a proposal of each kind was the value the agent sent."""

    def __init__(self) -> None:
        self.stats: dict[str, Stat] = {}
        # how often a tool's first call in an application sent just its required names
        self.keyset = Stat()

    def observe_keyset(self, required_only: bool) -> None:
        self.keyset.trials += 1
        self.keyset.hits += required_only

    def keyset_weight(self) -> float:
        return self.keyset.score

    def weight(self, kind: str) -> float:
        st = self.stats.get(kind)
        return st.score if st is not None else Stat().score

    def observe(
        self, tool: str, name: str, spec: ArgSpec | None, value: Any, mem: SessionMemory
    ) -> None:
        """Score every proposal for an argument the agent just sent."""
        for kind, source in _proposals_now(tool, name, spec, mem):
            predicted = resolve(source, mem)
            if predicted is None:
                continue
            st = self.stats.get(kind)
            if st is None:
                st = self.stats[kind] = Stat()
            st.trials += 1
            hit = value in predicted if kind.endswith("/each") else _same(predicted, value)
            st.hits += hit
            if st.trials > AGE_AT:
                st.hits /= 2
                st.trials /= 2

    def values(
        self, tool: str, name: str, spec: ArgSpec | None, mem: SessionMemory, remaining: float
    ) -> list[tuple[Any, float, bool]]:
        """Values the priors propose, each with weight x the probability the learned
        sources left (`remaining`), like later hypotheses in ArgHypotheses.values."""
        out: list[tuple[Any, float, bool]] = []
        for kind, source in _proposals_now(tool, name, spec, mem):
            if remaining < 0.01:
                break
            value = resolve(source, mem)
            if value is None:
                continue
            p = self.weight(kind) * remaining
            remaining -= p
            out.append((value, p, kind.endswith("/each")))
        return out


def _proposals_now(
    tool: str, name: str, spec: ArgSpec | None, mem: SessionMemory
) -> list[tuple[str, Source]]:
    """`proposals`, computed once a turn: they read earlier turns and the user's words,
    which change only between turns (like resolved sources)."""
    resolved = mem.resolved_now()
    key = ("priors", tool, name)
    found = resolved.get(key)
    if found is None:
        found = resolved[key] = proposals(name, spec, mem)
    return found


def _same(predicted: Any, value: Any) -> bool:
    return type(predicted) is type(value) and predicted == value
