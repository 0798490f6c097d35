"""JSON values as leaves with paths, the keys values are matched by, and transforms.

A path is a tuple of dict keys and list indexes; "*" stands for every element
of a list (fan-out), and JSON_STEP for the JSON a string carries (embedded.py).
Matching is by a normalized key, so "42" finds 42 and "Paris" finds "paris";
the transform that turns the source into the observed value is then worked
out exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prefire.patterns.canonical import canonical, canonical_key
from prefire.patterns.embedded import embedded_json

Path = tuple[Any, ...]
WILDCARD = "*"
# The step from a string into the JSON inside it. Like WILDCARD (which applies to lists
# only), it applies to strings only: a dict key of the same name is still a key.
JSON_STEP = "{json}"

MAX_LEAVES = 400
MAX_DEPTH = 8
MAX_EMBEDDED = 16  # strings of one value searched for JSON inside them
_MAX_CONTAINER_KEY = 256  # canonical bytes; bigger containers are matched by their leaves only


def leaves(value: Any, max_leaves: int = MAX_LEAVES) -> Iterator[tuple[Path, Any]]:
    """(path, value) for scalars, and for small containers as a whole, depth-first."""
    # children are walked lazily, so a huge list costs only the leaves taken from it
    stack: list[Iterator[tuple[Path, Any]]] = [iter((((), value),))]
    emitted = 0
    searched = 0
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        path, v = item
        if isinstance(v, dict | list):
            if _small(v):
                yield path, v
                emitted += 1
            if len(path) < MAX_DEPTH:
                stack.append(_children(path, v))
        elif v is not None:
            yield path, v
            emitted += 1
            if isinstance(v, str) and len(path) < MAX_DEPTH and searched < MAX_EMBEDDED:
                searched += 1
                inner = embedded_json(v)
                if inner is not None:
                    stack.append(iter((((*path, JSON_STEP), inner),)))
        if emitted >= max_leaves:
            return


def _children(path: Path, container: dict[Any, Any] | list[Any]) -> Iterator[tuple[Path, Any]]:
    items = container.items() if isinstance(container, dict) else enumerate(container)
    return (((*path, k), v) for k, v in items)


def _small(container: dict[Any, Any] | list[Any]) -> bool:
    """Whether the container's canonical JSON fits a container key; a cheap lower
    bound on its size rules out big ones without serializing them."""
    return (
        min_size(container, _MAX_CONTAINER_KEY) <= _MAX_CONTAINER_KEY
        and len(canonical(container)) <= _MAX_CONTAINER_KEY
    )


def min_size(v: Any, budget: int) -> int:
    """A lower bound on len(canonical(v)); stops counting once it passes `budget`."""
    if isinstance(v, str):
        return len(v) + 2
    if isinstance(v, dict):
        n = 1 + (not v)
        for k, x in v.items():
            n += (len(k) if isinstance(k, str) else 1) + 4 + min_size(x, budget - n)
            if n > budget:
                break
        return n
    if isinstance(v, list):
        n = 1 + (not v)
        for x in v:
            n += 1 + min_size(x, budget - n)
            if n > budget:
                break
        return n
    return 4 if v is None or v is True else 5 if v is False else 1


def at_path(value: Any, path: Path) -> Any:
    """The value at `path`; a WILDCARD step yields a list of every element's value, a
    JSON_STEP the JSON inside a string. Missing steps give None."""
    for i, step in enumerate(path):
        if step == JSON_STEP and isinstance(value, str):
            value = embedded_json(value)
            if value is None:
                return None
        elif step == WILDCARD and isinstance(value, list):
            rest = path[i + 1 :]
            out = [at_path(v, rest) for v in value]
            return [v for v in out if v is not None]
        elif isinstance(value, dict) and isinstance(step, str):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and -len(value) <= step < len(value):
            value = value[step]
        else:
            return None
    return value


def match_keys(value: Any) -> list[tuple[str, Any]]:
    """Normalized keys under which `value` is indexed and looked up."""
    if isinstance(value, bool):
        return [("b", value)]
    if isinstance(value, int | float):
        return [("n", float(value))] if abs(value) < 1e15 else [("s", str(value))]
    if isinstance(value, str):
        keys: list[tuple[str, Any]] = [("s", value.casefold())]
        number = _as_number(value)
        if number is not None:
            keys.append(("n", number))
        return keys
    keys = [("j", canonical_key(value))]
    if isinstance(value, list) and 1 < len(value) <= 50 and all(isinstance(v, str) for v in value):
        # a list of strings also stands for its joined text, and that text for the list
        keys += [("s", sep.join(value).casefold()) for sep in _SEPARATORS.values()]
    return keys


_SEPARATORS = {"join_comma_space": ", ", "join_comma": ",", "join_space": " "}
_SPLITS = {"split_comma_space": ", ", "split_comma": ",", "split_space": " "}


def _as_number(text: str) -> float | None:
    t = text.strip()
    if not t or len(t) > 20 or not (t[0].isdigit() or t[0] in "+-."):
        return None
    try:
        return float(t)
    except ValueError:
        return None


# Transforms that turn a source value into an argument value; None means as-is.
TRANSFORMS = (
    "str",
    "int",
    "float",
    "lower",
    "upper",
    "title",
    "headline",
    *_SEPARATORS,
    *_SPLITS,
)
# words a title keeps in lower case after its first word ("A Map of Small Rivers")
_MINOR = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "de",
        "del",
        "for",
        "from",
        "in",
        "nor",
        "of",
        "on",
        "or",
        "per",
        "the",
        "to",
        "via",
        "von",
        "with",
    ]
)


def transform_between(source: Any, target: Any) -> str | bool | None:
    """The transform that maps source to target: None for identity, a name from
    TRANSFORMS, or False when none does."""
    if type(source) is type(target) and source == target:
        return None
    for name in TRANSFORMS:
        out = apply(name, source)
        if out is not None and type(out) is type(target) and out == target:
            return name
    return False


def apply(transform: str | None, value: Any) -> Any:
    """Apply a transform; None when it does not apply to this value."""
    if transform is None:
        return value
    if transform == "str":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return str(value)
    if transform in ("int", "float"):
        if isinstance(value, bool):
            return None
        try:
            number = float(value) if isinstance(value, str | int | float) else None
        except ValueError:
            return None
        if number is None:
            return None
        if transform == "int":
            return int(number) if number.is_integer() else None
        return number
    if transform in _SEPARATORS:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return _SEPARATORS[transform].join(value)
        return None
    if not isinstance(value, str):
        return None
    if transform in _SPLITS:
        return [part.strip() for part in value.split(_SPLITS[transform])]
    if transform == "lower":
        return value.lower()
    if transform == "upper":
        return value.upper()
    if transform == "title":
        return value.title()
    if transform == "headline":
        return _headline(value)
    return None


def _headline(text: str) -> str:
    """Title case as a title is written: each word capitalized but the minor words after
    the first, the rest of each word kept ("salt and signal" -> "Salt and Signal")."""
    words = text.split(" ")
    return " ".join(
        w if i and w.lower() in _MINOR else w[:1].upper() + w[1:] for i, w in enumerate(words)
    )
