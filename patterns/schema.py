"""What a tool's JSON schema says about each argument: its JSON types, the form a
string takes (a date, a time, an e-mail), its enum members and default.

Only the top level of `parameters.properties` is read (arguments are predicted by
top-level name). Anything the schema leaves open stays open: `types` empty means
any JSON type is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_JSON_TYPES = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})
_DATE_HINT = re.compile(r"yyyy-mm-dd|\bdate\b|\bday\b", re.IGNORECASE)
_TIME_HINT = re.compile(r"hh:mm|\btime\b", re.IGNORECASE)
_EMAIL_HINT = re.compile(r"e-?mail", re.IGNORECASE)
_DATETIME_HINT = re.compile(r"yyyy-mm-dd[ t]hh:mm|date-?time|timestamp", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ArgSpec:
    types: frozenset[str] = frozenset()  # JSON types allowed; empty: any
    # the form of a string value: "date", "time", "datetime", "email" or "" (free)
    form: str = ""
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
    form = ""
    if not types or "string" in types:
        form = _form(name, prop)
    return ArgSpec(types, form, enum_t, prop.get("default"), "default" in prop)


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


def _form(name: str, prop: dict[str, Any]) -> str:
    fmt = prop.get("format")
    if fmt in ("date", "time", "email"):
        return str(fmt)
    if fmt == "date-time":
        return "datetime"
    text = " ".join(
        str(prop.get(k, "")) for k in ("description", "title", "pattern") if prop.get(k)
    )
    label = f"{name} {text}"
    if _DATETIME_HINT.search(label):
        return "datetime"
    if _EMAIL_HINT.search(name) or fmt == "idn-email":
        return "email"
    lname = name.lower()
    if "date" in lname or "yyyy-mm-dd" in text.lower() or lname in ("day", "dob", "birthday"):
        return "date"
    if lname == "time" or lname.endswith("_time") or "hh:mm" in text.lower():
        return "time"
    return ""


def conforms(value: Any, spec: ArgSpec) -> bool:
    """Whether `value`'s JSON type is one the schema allows (enum members always are)."""
    if spec.enum and value in spec.enum and any(type(value) is type(m) for m in spec.enum):
        return True
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
