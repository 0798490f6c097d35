"""REST request templates: a rule's declared template rendered for a call, a template
derived from a call and the request that followed it, and the key a request is served by.

Pure: text and JSON in, requests and templates out; proxy/rest.py learns templates from
traffic with these.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import orjson

from prefire.patterns.canonical import canonical_key

_FORMATTER = string.Formatter()


@dataclass(frozen=True, slots=True)
class RestRequest:
    method: str
    url: str
    body: Any = None  # None: send no body


@dataclass(frozen=True, slots=True)
class RestTemplate:
    """A REST binding declared in a rule: `{name}` placeholders take the call's arguments
    (`{{` and `}}` are literal braces)."""

    url: str
    method: str = "GET"
    body: Any = None

    def render(self, arguments: Mapping[str, Any]) -> RestRequest:
        """The request for one call. Raises KeyError naming a placeholder the arguments lack."""
        url = _fill(self.url, arguments, lambda v: quote(_text(v), safe=""))
        return RestRequest(self.method, url, _fill_body(self.body, arguments))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _fill(template: str, arguments: Mapping[str, Any], encode: Callable[[Any], str]) -> str:
    out = []
    for literal, name, _, _ in _FORMATTER.parse(template):
        out.append(literal)
        if name is not None:
            out.append(encode(arguments[name]))
    return "".join(out)


def _fill_body(body: Any, arguments: Mapping[str, Any]) -> Any:
    if isinstance(body, str):
        parts = list(_FORMATTER.parse(body))
        if len(parts) == 1 and parts[0][0] == "" and parts[0][1] is not None:
            # a string that is only "{name}" takes the argument itself, keeping its JSON type
            return arguments[parts[0][1]]
        return _fill(body, arguments, _text)
    if isinstance(body, dict):
        return {k: _fill_body(v, arguments) for k, v in body.items()}
    if isinstance(body, list):
        return [_fill_body(v, arguments) for v in body]
    return body


def derive(method: str, url: str, body: Any, arguments: dict[str, Any]) -> RestTemplate | None:
    """The template that turns `arguments` into this request, if every argument appears in it."""
    values = {
        name: v
        for name, v in arguments.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool)
    }
    if not values or len(values) != len(arguments):
        return None
    by_text = {_plain_text(v): name for name, v in values.items() if _plain_text(v)}
    used: set[str] = set()

    def place(text: str) -> str:
        name = by_text.get(text)
        if name is None:
            return text.replace("{", "{{").replace("}", "}}")
        used.add(name)
        return "{" + name + "}"

    parts = urlsplit(url)
    path = "/".join(_keep_placeholder(place(unquote(seg))) for seg in parts.path.split("/"))
    query = "&".join(
        f"{quote(k, safe='')}={_keep_placeholder(place(v))}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    template_url = urlunsplit((parts.scheme, parts.netloc, path, query, ""))
    template_body = _place_body(body, values, used)
    if used != set(values):
        return None
    return RestTemplate(url=template_url, method=method.upper(), body=template_body)


def _place_body(body: Any, values: dict[str, Any], used: set[str]) -> Any:
    if isinstance(body, dict):
        return {k: _place_body(v, values, used) for k, v in body.items()}
    if isinstance(body, list):
        return [_place_body(v, values, used) for v in body]
    for name, v in values.items():
        if type(v) is type(body) and v == body:
            used.add(name)
            return "{" + name + "}"
    if isinstance(body, str):
        return body.replace("{", "{{").replace("}", "}}")
    return body


def _plain_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _keep_placeholder(text: str) -> str:
    """Percent-encode a template piece, leaving its {placeholders} to `render`."""
    return quote(text, safe="{}")


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: what a client's headers and a host's reads are kept by."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def request_key(method: str, url: str, body: Any) -> tuple[str, bytes]:
    """What identifies a REST request for serving: method, origin, decoded path, query
    pairs in order and canonical body, so that equivalent encodings match."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ident = [method.upper(), parts.scheme, parts.netloc.lower(), unquote(parts.path), query, body]
    return f"{method.upper()} {parts.scheme}://{parts.netloc}{parts.path}", canonical_key(ident)
