"""Tool-safety rules: which tools may run before the agent asks for them, how long a
speculative result stays fresh, how often it may be served, and what a call drops.

Deny by default: a tool runs early only if the first rule that matches it says
`prefire: true`. The live proxy and replay decide with the same RuleSet.

Pure. The rules file's text becomes a RuleSet in prefire.rules.loader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import orjson

from prefire.rules.rest import RestTemplate

# MCP ToolAnnotations hints, with the value the MCP spec says to assume when a
# server leaves one out (so a server that says nothing is never taken as read-only).
HINT_DEFAULTS: dict[str, bool] = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": True,
}
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY"}
)

# What one wasted early call costs, in seconds of waiting it is worth, for a rule that
# does not say: a read of a service that is neither paid nor rate-limited.
DEFAULT_COST = 0.25
# where an early MCP call runs: a session prefire opens itself, or the conversation's own
SESSION_MODES = ("own", "agent")


class RulesError(ValueError):
    """A rules file that cannot be used. `problems` holds one `file:line: key: what is wrong`
    line per problem; the message is all of them, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Budgets:
    """Global hard caps on speculation; what is worth firing is decided by expected
    value (patterns/policy.py) with each rule's `cost`. max_waste_share and
    min_waste_samples bind the live speculator only."""

    max_concurrent: int = 4  # guesses (predicted, chained) in flight per conversation
    max_per_turn: int = 3  # calls fired at one decision point (or from one chained result)
    # Deprecated (rule files from before `cost`): a floor under the expected-value rule.
    min_probability: float = 0.0
    max_waste_share: float = 0.5  # a tool wasting more of its early calls is backed off
    min_waste_samples: int = 10  # early calls of a tool before its waste share is judged
    # steps past a decision point an early call may chain (patterns/chain.py); 0: no chaining
    max_chain_depth: int = 2

    def backs_off(self, fired: int, wasted: int) -> bool:
        """Whether a tool with this record should stop being fired early. Judging after
        a few samples only keeps one unlucky early call from silencing a tool."""
        return fired >= self.min_waste_samples and wasted / fired > self.max_waste_share


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule. Every condition given must hold; a condition about something the
    caller does not know (no server, no annotations, not a REST call) does not hold."""

    prefire: bool
    # what one wasted early call costs, in seconds of waiting (see patterns/policy.py)
    cost: float = DEFAULT_COST
    tool: tuple[str, ...] = ()
    server: tuple[str, ...] = ()
    annotations: Mapping[str, bool] = field(default_factory=dict)
    trust_annotations: bool = False
    method: tuple[str, ...] = ()
    host: tuple[str, ...] = ()
    ttl: float = 30.0
    reuse: int = 1
    # what is learned about this tool's arguments is pooled across scopes (tenants)
    shared_learning: bool = False
    invalidates: tuple[str, ...] = ()
    rest: RestTemplate | None = None
    session: str = "own"  # one of SESSION_MODES
    index: int = 0  # position in the file, from 0
    line: int = 0  # line of the rule in its file, from 1; 0 for a rule built in code
    text: str = ""  # the rule as written, for `prefire rules explain`

    def check(
        self,
        names: Sequence[str],
        servers: Sequence[str],
        annotations: Mapping[str, Any] | None,
        method: str | None,
        host: str | None,
    ) -> tuple[bool, str]:
        """Whether the rule matches, and why: the conditions that held, or the first failing."""
        why: list[str] = []
        tool = names[0] if names else ""
        if self.tool:
            glob = _first_match(self.tool, names)
            if glob is None:
                return False, f"tool {quote_all(names)} matches none of {quote_all(self.tool)}"
            why.append(f"tool {quote(glob[0])} matches {quote(glob[1])}")
        if self.server:
            if not servers:
                return (
                    False,
                    f"server: not known for {quote(tool)}, rule wants {quote_all(self.server)}",
                )
            hit = _first_match(self.server, servers)
            if hit is None:
                return (
                    False,
                    f"server {quote_all(servers)} matches none of {quote_all(self.server)}",
                )
            why.append(f"server {quote(hit[0])} matches {quote(hit[1])}")
        if self.annotations:
            held = _annotations_hold(self.annotations, self.trust_annotations, annotations)
            if not held[0]:
                return held
            why.append(held[1])
        if self.method:
            if method is None:
                return (
                    False,
                    f"method: not known for {quote(tool)}, rule wants {quote_all(self.method)}",
                )
            if _first_match(self.method, [method.upper()]) is None:
                return False, f"method {method.upper()} matches none of {quote_all(self.method)}"
            why.append(f"method {method.upper()} matches")
        if self.host:
            if host is None:
                return (
                    False,
                    f"host: not known for {quote(tool)}, rule wants {quote_all(self.host)}",
                )
            hit = _first_match(self.host, [host.lower()])
            if hit is None:
                return False, f"host {quote(host.lower())} matches none of {quote_all(self.host)}"
            why.append(f"host {quote(hit[0])} matches {quote(hit[1])}")
        return True, "; ".join(why) or "the rule has no conditions"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: Rule | None  # None: no rule matched, denied by default
    reason: str
    skipped: tuple[tuple[Rule, str], ...] = ()  # the rules before the deciding one, and why not


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Rules in file order plus budgets; the empty RuleSet denies every tool."""

    rules: tuple[Rule, ...] = ()
    budgets: Budgets = field(default_factory=Budgets)
    source: str = ""
    # file:line: key: what is deprecated, for a file that still loads
    warnings: tuple[str, ...] = ()

    def decide(
        self,
        tool: str | Sequence[str],
        server: str | Sequence[str] | None = None,
        annotations: Mapping[str, Any] | None = None,
        method: str | None = None,
        host: str | None = None,
    ) -> Decision:
        """The first matching rule decides; none matching denies.

        tool: the tool's name, or its names: the one the model calls it by and the one
        its MCP server runs it by, when they differ (a rule's glob may match either).
        server: the MCP server's URL and/or name (a rule's glob may match either).
        annotations: the tool's MCP annotations as listed by its server; None when the
        tool is not an MCP tool, {} when the server gave none (spec defaults apply).
        method, host: the HTTP request a REST tool binds to.
        """
        names = (tool,) if isinstance(tool, str) else tuple(dict.fromkeys(tool))
        servers = (server,) if isinstance(server, str) else tuple(server or ())
        skipped: list[tuple[Rule, str]] = []
        for rule in self.rules:
            matched, why = rule.check(names, servers, annotations, method, host)
            if matched:
                return Decision(rule.prefire, rule, why, tuple(skipped))
            skipped.append((rule, why))
        listed = " or ".join(names)
        return Decision(False, None, f"no rule matches {listed}: denied by default", tuple(skipped))

    def cost(
        self,
        tool: str | Sequence[str],
        server: str | Sequence[str] | None = None,
        annotations: Mapping[str, Any] | None = None,
    ) -> float:
        """What one wasted early call of `tool` costs: the deciding rule's `cost`, or
        DEFAULT_COST when no rule decides from what is known (the firing still asks
        `decide` with everything known, so pricing a call never allows it)."""
        rule = self.decide(tool, server, annotations).rule
        return rule.cost if rule is not None else DEFAULT_COST

    def shares_learning(self, tool: str) -> bool:
        """Whether the rule that decides `tool` (by its name alone: the model knows no
        servers) pools what is learned about its arguments across scopes."""
        if not any(r.shared_learning for r in self.rules):
            return False
        rule = self.decide(tool).rule
        return rule is not None and rule.shared_learning


# -- matching ---------------------------------------------------------------------


def _first_match(globs: Sequence[str], values: Sequence[str]) -> tuple[str, str] | None:
    return next(((v, g) for v in values for g in globs if fnmatchcase(v, g)), None)


def _annotations_hold(
    wanted: Mapping[str, bool], trusted: bool, listed: Mapping[str, Any] | None
) -> tuple[bool, str]:
    if not trusted:
        return False, "annotations: not trusted (the rule lacks trust_annotations: true)"
    if listed is None:
        return False, "annotations: the tool has none (not an MCP tool, or not listed yet)"
    held = []
    for name, want in wanted.items():
        have = listed.get(name)
        # a non-boolean hint is malformed; fall back to the spec's default as if absent
        value = have if isinstance(have, bool) else HINT_DEFAULTS.get(name)
        source = "" if isinstance(have, bool) else " (not given; MCP default)"
        if value is not want:
            return False, f"{name} is {yaml_bool(value)}{source}, rule wants {yaml_bool(want)}"
        held.append(f"{name} is {yaml_bool(value)}{source}")
    return True, ", ".join(held) + " (annotations trusted by this rule)"


# wording shared with the loader's messages


def yaml_bool(value: bool | None) -> str:
    if value is None:
        return "null"
    return "true" if value else "false"


def quote(value: str) -> str:
    return orjson.dumps(value).decode()


def quote_all(values: Sequence[str]) -> str:
    return ", ".join(quote(v) for v in values)
