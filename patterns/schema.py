"""What a tool's JSON schema says about each argument: its JSON types, the form a
string takes (a date, a time, an e-mail), its enum members and default.

Only the top level of `parameters.properties` is read (arguments are predicted by
top-level name). Anything the schema leaves open stays open: `types` empty means
any JSON type is allowed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from prefire.patterns.typed import parse_as

_JSON_TYPES = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})
# a description or pattern that states the form ("in the format YYYY-MM-DD", "HH:MM")
_DATE_HINT = re.compile(r"yyyy-mm-dd|\\d\{4\}-\\d\{2\}-\\d\{2\}", re.IGNORECASE)
_TIME_HINT = re.compile(r"\bhh:mm\b", re.IGNORECASE)
_DATETIME_HINT = re.compile(r"yyyy-mm-dd[ t]hh:mm", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ArgSpec:
    types: frozenset[str] = frozenset()  # JSON types allowed; empty: any
    # the form of a string value: "date", "time", "datetime", "email" or "" (free)
    form: str = ""
    # the form was stated (a `format`, or a pattern or description naming it), not
    # guessed from the name: values not in that form are ruled out
    strict: bool = False
    enum: tuple[Any, ...] = ()
    default: Any = None
    has_default: bool = False


@dataclass(frozen=True, slots=True)
class ToolSchema:
    args: dict[str, ArgSpec]
    required: tuple[str, ...]


def parse_tool(parameters: Any) -> ToolSchema | None:
    """The schema of a tool's parameters, or None when it says nothing usable."""
    if not isinstance(parameters, dict):
        return None
    props = parameters.get("properties")
    if not isinstance(props, dict):
        return None
    defs = parameters.get("$defs") or parameters.get("definitions") or {}
    args = {str(name): _arg(name, prop, defs) for name, prop in props.items()}
    required = parameters.get("required")
    req = tuple(r for r in required if r in args) if isinstance(required, list) else ()
    return ToolSchema(args, req)


def _arg(name: str, prop: Any, defs: Any) -> ArgSpec:
    if not isinstance(prop, dict):
        return ArgSpec()
    ref = prop.get("$ref")
    if isinstance(ref, str) and isinstance(defs, dict):
        target = defs.get(ref.rsplit("/", 1)[-1])
        if isinstance(target, dict):
            prop = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    types = _types(prop)
    enum = prop.get("enum")
    enum_t = tuple(enum) if isinstance(enum, list) else ()
    if "const" in prop:
        enum_t = (prop["const"],)
    form, strict = _form(name, prop) if not types or "string" in types else ("", False)
    return ArgSpec(types, form, strict, enum_t, prop.get("default"), "default" in prop)


def _types(prop: dict[str, Any]) -> frozenset[str]:
    t = prop.get("type")
    if isinstance(t, str):
        found = {t}
    elif isinstance(t, list):
        found = {x for x in t if isinstance(x, str)}
    else:
        found = set()
        for key in ("anyOf", "oneOf"):
            options = prop.get(key)
            if not isinstance(options, list):
                continue
            for option in options:
                sub = _types(option) if isinstance(option, dict) else frozenset()
                if not sub:  # an option without a type allows anything
                    return frozenset()
                found |= sub
    return frozenset(found & _JSON_TYPES)


@functools.lru_cache(maxsize=4096)
def name_words(name: str) -> tuple[str, ...]:
    """`travel_date`, `travelDate`, `travel-date` -> ("travel", "date")."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return tuple(w for w in re.split(r"[_\-\s.]+", spaced.casefold()) if w)


def _form(name: str, prop: dict[str, Any]) -> tuple[str, bool]:
    """The form of a string argument and whether the schema states it."""
    fmt = prop.get("format")
    if fmt in ("date", "time", "email"):
        return str(fmt), True
    if fmt in ("date-time", "idn-email"):
        return ("datetime" if fmt == "date-time" else "email"), True
    text = " ".join(str(prop.get(k, "")) for k in ("description", "pattern") if prop.get(k))
    if _DATETIME_HINT.search(text):
        return "datetime", True
    if _DATE_HINT.search(text):
        return "date", True
    if _TIME_HINT.search(text):
        return "time", True
    words = set(name_words(name))
    if words & {"email", "mail"}:
        return "email", False
    if words & {"date", "day", "dob", "birthday", "birthdate"}:
        return "date", False
    if "time" in words:
        return "time", False
    return "", False


def conforms(value: Any, spec: ArgSpec) -> bool:
    """Whether `value` is one the schema allows: an enum member when it lists members,
    else of a JSON type it allows, a string in the form it states."""
    if spec.enum:
        return any(value == m and type(value) is type(m) for m in spec.enum)
    stated_form = spec.strict and spec.form in ("date", "time", "email")
    if stated_form and isinstance(value, str) and parse_as(spec.form, value) is None:
        return False
    if not spec.types:
        return True
    return json_type(value) in spec.types or (
        json_type(value) == "integer" and "number" in spec.types
    )


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def snap(value: Any, spec: ArgSpec) -> Any:
    """The enum member a string names in another case ("eastside" -> "Eastside"), else
    the value itself: a tool's listed members are how it wants the user's words."""
    if spec.enum and isinstance(value, str) and value not in spec.enum:
        folded = value.casefold()
        for member in spec.enum:
            if isinstance(member, str) and member.casefold() == folded:
                return member
    return value
