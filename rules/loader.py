"""Loading a rules file's text into a RuleSet (prefire.rules.ruleset), with its checks.

Pure: `load_rules` takes the file's text, not its path. ruamel.yaml (already
required by mitmproxy) only parses here; its round-trip loader keeps the line of
every key and value, so each problem is reported as `file:line: key: what is
wrong`, all of them at once, since people fix a rules file in one pass.
"""

from __future__ import annotations

import difflib
import math
import re
import string
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from prefire.rules.rest import RestTemplate
from prefire.rules.ruleset import (
    HINT_DEFAULTS,
    HTTP_METHODS,
    SESSION_MODES,
    Budgets,
    Rule,
    RulesError,
    RuleSet,
    quote,
    yaml_bool,
)

_BODYLESS = frozenset({"GET", "HEAD"})
_GLOB_CHARS = frozenset("*?[")
_ARGUMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FORMATTER = string.Formatter()
_TOP_KEYS = ("rules", "budgets")
_RULE_KEYS = (
    "match",
    "prefire",
    "cost",
    "trust_annotations",
    "ttl",
    "reuse",
    "shared_learning",
    "invalidates",
    "rest",
    "session",
)
_MATCH_KEYS = ("tool", "server", "annotations", "method", "host")
_REST_KEYS = ("method", "url", "body")


def load_rules(text: str, filename: str = "<rules>") -> RuleSet:
    """Parse and check a rules file's text; raise RulesError listing every problem."""
    loader = _Loader(text, filename)
    ruleset = loader.load()
    if loader.problems:
        loader.problems.sort(key=lambda p: p[0])
        raise RulesError(
            [f"{filename}:{line}: {key}: {what}" for line, key, what in loader.problems]
        )
    if loader.warnings:
        warnings = tuple(f"{filename}:{line}: {key}: {what}" for line, key, what in loader.warnings)
        ruleset = RuleSet(ruleset.rules, ruleset.budgets, ruleset.source, warnings)
    return ruleset


def _placeholder_problem(template: str) -> str | None:
    try:
        parts = list(_FORMATTER.parse(template))
    except ValueError as exc:
        return f"{quote(template)}: {exc}; write {{{{ and }}}} for literal braces"
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not _ARGUMENT_NAME.match(name) or spec or conversion:
            raw = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            return (
                f"placeholder {{{raw}}} in {quote(template)} "
                "must be an argument name, like {city}"
            )
    return None


def _url_problem(url: str) -> str | None:
    problem = _placeholder_problem(url)
    if problem:
        return problem
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return f"{quote(url)} must start with http:// or https://"
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if not authority:
        return f"{quote(url)} has no host"
    if "{" in authority or "}" in authority:
        # predicted arguments can come from tool results (untrusted text): they must
        # never choose where prefire sends a request carrying the agent's credentials
        return f"{quote(url)}: placeholders may not be in the host; only in the path, query or body"
    return None


# -- loading ----------------------------------------------------------------------


class _Loader:
    """Walks the round-trip YAML tree, collecting (line, key, what) problems."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.problems: list[tuple[int, str, str]] = []
        self.warnings: list[tuple[int, str, str]] = []

    def problem(self, line: int, key: str, what: str) -> None:
        self.problems.append((line, key, what))

    def load(self) -> RuleSet:
        try:
            doc = YAML(typ="rt").load(self.text)
        except YAMLError as exc:
            self._yaml_error(exc)
            return RuleSet()
        if doc is None:
            doc = CommentedMap()
        if not isinstance(doc, CommentedMap):
            self.problem(1, "rules", f"the file must be a mapping with rules:, not {_kind(doc)}")
            return RuleSet()
        self._unknown(doc, _TOP_KEYS, "")
        budgets = self._budgets(doc) if "budgets" in doc else Budgets()
        rules: list[Rule] = []
        if "rules" not in doc:
            self.problem(1, "rules", "missing; `rules: []` denies every tool")
        elif isinstance(doc["rules"], CommentedSeq):
            seq = doc["rules"]
            starts = [seq.lc.item(i) for i in range(len(seq))]
            texts = _rule_texts(self.text.splitlines(), starts)
            for i, item in enumerate(seq):
                rule = self._rule(i, item, starts[i][0] + 1, texts[i])
                if rule is not None:
                    rules.append(rule)
        elif doc["rules"] is not None:  # `rules:` with every rule commented out is empty
            self.problem(
                _value_line(doc, "rules"),
                "rules",
                f"must be a list of rules, not {_kind(doc['rules'])}",
            )
        return RuleSet(tuple(rules), budgets if budgets is not None else Budgets(), self.filename)

    def _yaml_error(self, exc: YAMLError) -> None:
        if isinstance(exc, MarkedYAMLError):
            mark = exc.problem_mark or exc.context_mark
            what = exc.problem or str(exc)
            if exc.context:
                # the context mark is where the construct began, often where the fix goes
                at = exc.context_mark
                where = f" at line {at.line + 1}" if at and mark and at.line != mark.line else ""
                what += f" ({exc.context}{where})"
        else:
            mark, what = None, str(exc)
        self.problem(mark.line + 1 if mark is not None else 1, "yaml", what)

    def _unknown(self, m: CommentedMap, known: Sequence[str], path: str) -> None:
        for key in m:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.problem(
                    _key_line(m, key),
                    f"{path}{key}",
                    f"unknown key{hint}; known keys here: {', '.join(known)}",
                )

    def _budgets(self, doc: CommentedMap) -> Budgets | None:
        b = doc["budgets"]
        if b is None:  # `budgets:` with every line commented out keeps the defaults
            return Budgets()
        b = self._mapping(doc, "budgets", "a mapping")
        if b is None:
            return None
        limits = {
            "max_concurrent": (True, 1, None),
            "max_per_turn": (True, 0, None),
            "min_probability": (False, 0, 1),
            "max_waste_share": (False, 0, 1),
            "min_waste_samples": (True, 1, None),
            "max_chain_depth": (True, 0, None),
        }
        self._unknown(b, tuple(limits), "budgets.")
        if "min_probability" in b:
            self.warnings.append(
                (
                    _key_line(b, "min_probability"),
                    "budgets.min_probability",
                    "deprecated: a call is started when p x saving > (1 - p) x cost, with "
                    "`cost` per rule; kept as a floor (nothing less likely is started); "
                    "remove it to let cost decide",
                )
            )
        values: dict[str, Any] = {}
        for key, (integer, low, high) in limits.items():
            if key in b:
                values[key] = self._number(b, key, "budgets.", integer=integer, low=low, high=high)
        if any(v is None for v in values.values()):
            return None
        return Budgets(**values)

    def _rule(self, index: int, item: Any, line: int, text: str) -> Rule | None:
        if not isinstance(item, CommentedMap):
            self.problem(
                line,
                "rules",
                f"each rule must be a mapping with match: and prefire:, not {_kind(item)}",
            )
            return None
        before = len(self.problems)
        self._unknown(item, _RULE_KEYS, "")
        match = self._match(item, line)
        prefire = None
        if "prefire" in item:
            prefire = self._bool(item, "prefire", "")
        else:
            self.problem(
                line, "prefire", "missing; every rule says prefire: true or prefire: false"
            )
        # only the keys given, so Rule's own defaults apply to the rest
        settings: dict[str, Any] = {}
        if "cost" in item:
            settings["cost"] = self._number(item, "cost", "", integer=False, low=0)
            if prefire is False:
                self.problem(
                    _key_line(item, "cost"),
                    "cost",
                    "prices a wasted early call; a rule with prefire: false starts none",
                )
        if "trust_annotations" in item:
            settings["trust_annotations"] = self._bool(item, "trust_annotations", "")
        if "ttl" in item:
            settings["ttl"] = self._number(item, "ttl", "", integer=False, low=0, above=True)
        if "reuse" in item:
            settings["reuse"] = self._number(item, "reuse", "", integer=True, low=1)
        if "shared_learning" in item:
            settings["shared_learning"] = self._bool(item, "shared_learning", "")
        if "invalidates" in item:
            settings["invalidates"] = self._globs(item, "invalidates", "")
        if "rest" in item:
            settings["rest"] = self._rest(item)
        if "session" in item:
            settings["session"] = self._session(item)
        if match is not None:
            self._cross_check(item, match, settings.get("trust_annotations", False))
        if len(self.problems) > before or match is None or prefire is None:
            return None
        return Rule(prefire=prefire, index=index, line=line, text=text, **match, **settings)

    def _cross_check(self, item: CommentedMap, match: dict[str, Any], trust: bool | None) -> None:
        m = item["match"]
        if match.get("annotations") and trust is False:
            self.problem(
                _key_line(m, "annotations"),
                "match.annotations",
                "MCP hints come from the server; add trust_annotations: true to this rule "
                "to rely on them (only for servers you trust)",
            )
        if trust and "annotations" not in m:
            self.problem(
                _key_line(item, "trust_annotations"),
                "trust_annotations",
                "has no effect without match.annotations",
            )
        if "rest" in item:
            tools: Sequence[str] = match.get("tool") or ()
            if len(tools) != 1 or _GLOB_CHARS & set(tools[0]):
                self.problem(
                    _key_line(item, "rest"),
                    "rest",
                    "a declared binding is for one tool: match.tool must name it, without globs",
                )

    def _match(self, item: CommentedMap, line: int) -> dict[str, Any] | None:
        if "match" not in item:
            self.problem(
                line, "match", 'missing; say which tools the rule is for, e.g. {tool: "search_*"}'
            )
            return None
        m = self._mapping(item, "match", 'a mapping of conditions, e.g. {tool: "search_*"}')
        if m is None:
            return None
        before = len(self.problems)
        self._unknown(m, _MATCH_KEYS, "match.")
        if not m:  # (only unknown keys: those messages already say what to write)
            self.problem(
                _value_line(item, "match"),
                "match",
                f'needs one of {", ".join(_MATCH_KEYS)} (tool: "*" matches every tool)',
            )
        out: dict[str, Any] = {}
        if "tool" in m:
            out["tool"] = self._globs(m, "tool", "match.")
        if "server" in m:
            out["server"] = self._globs(m, "server", "match.")
        if "method" in m:
            out["method"] = self._globs(m, "method", "match.", fold=str.upper, also=_method_problem)
        if "host" in m:
            out["host"] = self._globs(m, "host", "match.", fold=str.lower, also=_host_problem)
        if "annotations" in m:
            out["annotations"] = self._annotations(m)
        return out if len(self.problems) == before else None

    def _annotations(self, m: CommentedMap) -> dict[str, bool] | None:
        a = m["annotations"]
        if not isinstance(a, CommentedMap) or not a:
            self.problem(
                _value_line(m, "annotations"),
                "match.annotations",
                f"must map MCP hints to true/false, e.g. {{readOnlyHint: true}}, not {_kind(a)}",
            )
            return None
        out: dict[str, bool] = {}
        for name in a:
            if name not in HINT_DEFAULTS:
                close = difflib.get_close_matches(str(name), HINT_DEFAULTS, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.problem(
                    _key_line(a, name),
                    f"match.annotations.{name}",
                    f"unknown MCP annotation{hint}; known: {', '.join(HINT_DEFAULTS)}",
                )
                continue
            value = self._bool(a, name, "match.annotations.")
            if value is not None:
                out[name] = value
        return out

    def _session(self, item: CommentedMap) -> str | None:
        value = item["session"]
        if value not in SESSION_MODES:
            self.problem(
                _value_line(item, "session"),
                "session",
                f"must be {' or '.join(SESSION_MODES)}, not {quote(str(value))} (own: a session "
                "prefire opens itself; agent: the conversation's own MCP session)",
            )
            return None
        return str(value)

    def _rest(self, item: CommentedMap) -> RestTemplate | None:
        r = self._mapping(item, "rest", "a mapping with url: (and method:, body:)")
        if r is None:
            return None
        before = len(self.problems)
        self._unknown(r, _REST_KEYS, "rest.")
        method = "GET"
        if "method" in r:
            value = r["method"]
            if isinstance(value, str) and value.upper() in HTTP_METHODS:
                method = value.upper()
            else:
                self.problem(
                    _value_line(r, "method"),
                    "rest.method",
                    f"must be one HTTP method ({', '.join(sorted(HTTP_METHODS))}), "
                    f"not {_kind(value)}",
                )
        url = r.get("url")
        if "url" not in r:
            self.problem(_key_line(item, "rest"), "rest.url", "missing; the URL template to call")
        elif not isinstance(url, str):
            self.problem(_value_line(r, "url"), "rest.url", f"must be a string, not {_kind(url)}")
        elif problem := _url_problem(url):
            self.problem(_value_line(r, "url"), "rest.url", problem)
        body = None
        if "body" in r:
            if method in _BODYLESS:
                self.problem(
                    _key_line(r, "body"),
                    "rest.body",
                    f"a {method} request carries no body; use POST, or put the arguments in url",
                )
            self._body_placeholders(r, "body", "rest.body")
            body = _plain(r["body"])
        if len(self.problems) > before or not isinstance(url, str):
            return None
        return RestTemplate(url=url, method=method, body=body)

    def _body_placeholders(self, parent: Any, key: Any, path: str) -> None:
        value = parent[key]
        line = (
            _value_line(parent, key)
            if isinstance(parent, CommentedMap)
            else _item_line(parent, key)
        )
        if isinstance(value, CommentedMap):
            for k in value:
                self._body_placeholders(value, k, f"{path}.{k}")
        elif isinstance(value, CommentedSeq):
            for i in range(len(value)):
                self._body_placeholders(value, i, f"{path}[{i}]")
        elif isinstance(value, str) and (problem := _placeholder_problem(value)):
            self.problem(line, path, problem)

    # -- typed values --

    def _mapping(self, parent: CommentedMap, key: str, what: str) -> CommentedMap | None:
        """parent[key] if it is a mapping; else a problem saying it must be `what`."""
        value = parent[key]
        if isinstance(value, CommentedMap):
            return value
        self.problem(_value_line(parent, key), key, f"must be {what}, not {_kind(value)}")
        return None

    def _bool(self, m: CommentedMap, key: str, path: str) -> bool | None:
        value = m[key]
        if isinstance(value, bool):
            return value
        self.problem(
            _value_line(m, key), f"{path}{key}", f"must be true or false, not {_kind(value)}"
        )
        return None

    def _number(
        self,
        m: CommentedMap,
        key: str,
        path: str,
        *,
        integer: bool,
        low: float,
        high: float | None = None,
        above: bool = False,
    ) -> float | int | None:
        value = m[key]
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        where, name = _value_line(m, key), f"{path}{key}"
        if isinstance(value, bool) or not ok_type:
            kind = "a whole number" if integer else "a number"
            self.problem(where, name, f"must be {kind}, not {_kind(value)}")
            return None
        if not math.isfinite(value):
            self.problem(where, name, f"must be a finite number, not {value}")
            return None
        if (value <= low if above else value < low) or (high is not None and value > high):
            if high is not None:
                want = f"between {low} and {high}"
            else:
                want = f"more than {low}" if above else f"at least {low}"
            self.problem(where, name, f"must be {want}, not {value}")
            return None
        return int(value) if integer else float(value)

    def _globs(
        self,
        m: CommentedMap,
        key: str,
        path: str,
        *,
        fold: Callable[[str], str] | None = None,
        also: Callable[[str], str | None] | None = None,
    ) -> tuple[str, ...] | None:
        """A glob or a list of globs."""
        value = m[key]
        if isinstance(value, str):
            items = [(value, _value_line(m, key))]
        elif isinstance(value, CommentedSeq) and value:
            items = [(v, _item_line(value, i)) for i, v in enumerate(value)]
        else:
            self.problem(
                _value_line(m, key),
                f"{path}{key}",
                f"must be a glob or a list of globs, not {_kind(value)}",
            )
            return None
        out = []
        for glob, line in items:
            if not isinstance(glob, str):
                self.problem(line, f"{path}{key}", f"must be a glob string, not {_kind(glob)}")
                continue
            glob = fold(glob) if fold else glob
            problem = _glob_problem(glob) or (also(glob) if also else None)
            if problem:
                self.problem(line, f"{path}{key}", problem)
            else:
                out.append(glob)
        return tuple(out) if len(out) == len(items) else None


def _glob_problem(glob: str) -> str | None:
    if not glob:
        return "empty glob"
    i, n = 0, len(glob)
    while i < n:  # the same bracket scan as fnmatch.translate, which treats an unclosed [ literally
        if glob[i] == "[":
            j = i + 1
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                return f'{quote(glob)}: unclosed "["; write [[] for a literal ['
            i = j
        i += 1
    return None


def _method_problem(glob: str) -> str | None:
    if not re.fullmatch(r"[A-Z*?\[\]!-]+", glob):
        return f"{quote(glob)} is not an HTTP method or method glob"
    if not _GLOB_CHARS & set(glob) and glob not in HTTP_METHODS:
        return f"unknown HTTP method {glob}; known: {', '.join(sorted(HTTP_METHODS))}"
    return None


def _host_problem(glob: str) -> str | None:
    if any(c in glob for c in "/:@ "):
        return (
            f'{quote(glob)}: a host name glob, without scheme, port or path, e.g. "*.example.com"'
        )
    return None


# -- YAML helpers -------------------------------------------------------------------


def _key_line(m: CommentedMap, key: Any) -> int:
    try:
        return int(m.lc.key(key)[0]) + 1
    except (KeyError, TypeError):  # keys from a merge (<<:) have no position of their own
        return int(m.lc.line) + 1


def _value_line(m: CommentedMap, key: Any) -> int:
    try:
        return int(m.lc.value(key)[0]) + 1
    except (KeyError, TypeError):
        return _key_line(m, key)


def _item_line(seq: CommentedSeq, index: int) -> int:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (KeyError, TypeError):
        return int(seq.lc.line) + 1


def _rule_texts(lines: list[str], starts: list[tuple[int, int]]) -> list[str]:
    """Each rule's source lines, from its first line to the next rule or the first line
    indented less than its keys; comments after a rule belong to what follows."""
    texts = []
    for i, (first, col) in enumerate(starts):
        if i + 1 < len(starts):
            end = starts[i + 1][0]
        else:
            end = first + 1
            while end < len(lines):
                stripped = lines[end].strip()
                indent = len(lines[end]) - len(lines[end].lstrip())
                if stripped and not stripped.startswith("#") and indent < col:
                    break
                end += 1
        block = lines[first : max(end, first + 1)]
        while len(block) > 1 and (not block[-1].strip() or block[-1].lstrip().startswith("#")):
            block.pop()
        texts.append(textwrap.dedent("\n".join(block)))
    return texts


def _plain(value: Any) -> Any:
    """ruamel's round-trip containers and scalar subclasses as plain JSON-like values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return yaml_bool(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return quote(value)
    return str(value)
