"""Rules files: the minimal shape, deny by default, first match wins, annotations only
when trusted, every kind of error at its line, the CLI, and replay under --rules."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prefire.rules.loader import load_rules
from prefire.rules.rest import RestTemplate
from prefire.rules.ruleset import (
    DEFAULT_COST,
    Budgets,
    Rule,
    RulesError,
    RuleSet,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / "configs" / "rules.yaml"

MINIMAL = """\
rules:
  - match: {tool: "search_*"}
    prefire: true
    ttl: 60
  - match: {tool: "book_*"}
    prefire: false
"""


def rules(text: str) -> RuleSet:
    return load_rules(textwrap.dedent(text), "r.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as info:
        rules(text)
    return info.value.problems


# -- the format ---------------------------------------------------------------------


def test_minimal_shape() -> None:
    rs = load_rules(MINIMAL, "r.yaml")
    search, book = rs.rules
    assert (search.prefire, search.tool, search.ttl, search.reuse) == (True, ("search_*",), 60, 1)
    assert (book.prefire, book.tool, book.ttl) == (False, ("book_*",), 30)
    assert (search.line, book.line) == (2, 5)
    assert search.text == '- match: {tool: "search_*"}\n  prefire: true\n  ttl: 60'
    assert rs.budgets == Budgets()

    allowed = rs.decide("search_flights")
    assert allowed.allowed and allowed.rule is search
    assert allowed.reason == 'tool "search_flights" matches "search_*"'
    denied = rs.decide("book_flight")
    assert not denied.allowed and denied.rule is book


def test_deny_by_default() -> None:
    rs = load_rules(MINIMAL, "r.yaml")
    decision = rs.decide("delete_account")
    assert not decision.allowed and decision.rule is None
    assert decision.reason == "no rule matches delete_account: denied by default"
    assert [r.index for r, _ in decision.skipped] == [0, 1]
    assert not RuleSet().decide("anything").allowed


def test_shipped_default_denies_everything_and_its_examples_load() -> None:
    text = DEFAULT_FILE.read_text()
    default = load_rules(text, str(DEFAULT_FILE))
    assert default.rules == ()
    assert not default.decide("search_flights").allowed
    # the commented example, uncommented as the file says, is a valid rules file
    lines = text.splitlines()
    start = lines.index("# rules:")
    example = "\n".join(line[2:] if line.startswith("# ") else "" for line in lines[start:])
    rs = load_rules(example, "example.yaml")
    assert len(rs.rules) == 8
    assert rs.budgets == Budgets()
    notes = rs.decide(["read_page", "mcp__notes__read_page"]).rule  # either name matches
    assert notes is not None and notes.session == "agent"
    assert rs.decide("search_hotels").allowed
    assert not rs.decide("book_hotel").allowed
    book, weather = rs.decide("book_hotel").rule, rs.decide("get_weather").rule
    assert book is not None and book.invalidates == ("search_*", "get_booking")
    assert weather is not None and weather.rest is not None


def test_a_rule_matches_either_name_of_a_tool_and_says_where_early_calls_run() -> None:
    rs = rules(
        """
        rules:
          - match: {tool: "mcp__weather__get_*"}
            prefire: true
            session: agent
          - match: {tool: get_forecast}
            prefire: true
        """
    )
    assert rs.decide(["get_weather", "mcp__weather__get_weather"]).allowed
    assert not rs.decide("get_weather").allowed  # the model-side name was not given
    assert rs.decide(["mcp__weather__get_forecast", "get_forecast"]).rule.session == "agent"
    assert rs.decide(["mcp__x__get_forecast", "get_forecast"]).rule.session == "own"
    with pytest.raises(RulesError) as err:
        rules("rules:\n  - match: {tool: x}\n    prefire: true\n    session: mine\n")
    assert "session: must be own or agent" in str(err.value)


def test_first_match_wins() -> None:
    rs = rules(
        """
        rules:
          - match: {tool: search_private}
            prefire: false
          - match: {tool: "search_*"}
            prefire: true
          - match: {tool: "*"}
            prefire: false
        """
    )
    assert not rs.decide("search_private").allowed
    assert rs.decide("search_public").allowed
    decision = rs.decide("other")
    assert not decision.allowed and decision.rule is rs.rules[2]


def test_globs() -> None:
    rs = rules(
        """
        rules:
          - match: {tool: ["get_?", "list_[ab]*"]}
            prefire: true
          - match: {server: ["https://mcp.example.com/*", files]}
            prefire: true
          - match: {method: ["GET", "h*"], host: "*.api.example.com"}
            prefire: true
        """
    )
    assert rs.decide("get_x").allowed and not rs.decide("get_xy").allowed
    assert rs.decide("list_all").allowed and not rs.decide("list_c").allowed
    assert not rs.decide("Get_x").allowed  # tool names are case-sensitive
    assert rs.decide("read", server="https://mcp.example.com/mcp").allowed
    assert rs.decide("read", server=["https://other/mcp", "files"]).allowed  # URL or name
    assert not rs.decide("read", server="https://evil.example.org/mcp").allowed
    assert rs.decide("call", method="get", host="EU.api.example.com").allowed
    assert rs.decide("call", method="HEAD", host="eu.api.example.com").allowed
    assert not rs.decide("call", method="POST", host="eu.api.example.com").allowed
    assert not rs.decide("call", method="GET", host="api.example.com").allowed
    assert not rs.decide("call", method="GET").allowed  # an unknown host does not match


def test_annotations_count_only_when_trusted() -> None:
    trusted = rules(
        """
        rules:
          - match: {annotations: {readOnlyHint: true}}
            trust_annotations: true
            prefire: true
        """
    )
    assert trusted.decide("read", annotations={"readOnlyHint": True}).allowed
    assert not trusted.decide("write", annotations={"readOnlyHint": False}).allowed
    # a server that says nothing, or says something malformed, gets the MCP default (false)
    assert not trusted.decide("read", annotations={}).allowed
    assert not trusted.decide("read", annotations={"readOnlyHint": "true"}).allowed
    assert not trusted.decide("read").allowed  # not an MCP tool
    # destructiveHint defaults to true, so silence is not "not destructive"
    cautious = rules(
        """
        rules:
          - match: {annotations: {destructiveHint: false}}
            trust_annotations: true
            prefire: true
        """
    )
    assert not cautious.decide("t", annotations={}).allowed
    assert cautious.decide("t", annotations={"destructiveHint": False}).allowed

    # without the opt-in the file is refused, and a rule built in code never matches on hints
    assert problems(
        """
        rules:
          - match: {annotations: {readOnlyHint: true}}
            prefire: true
        """
    ) == [
        "r.yaml:3: match.annotations: MCP hints come from the server; add "
        "trust_annotations: true to this rule to rely on them (only for servers you trust)"
    ]
    untrusted = RuleSet((Rule(prefire=True, annotations={"readOnlyHint": True}),))
    decision = untrusted.decide("read", annotations={"readOnlyHint": True})
    assert not decision.allowed and decision.rule is None
    assert "trust_annotations" in decision.skipped[0][1]


def test_settings_and_budgets() -> None:
    rs = rules(
        """
        rules:
          - match: {tool: get_weather}
            prefire: true
            ttl: 2.5
            reuse: 3
            invalidates: "cache_*"
            rest:
              url: "https://w.example.com/v1/{city}?units={units}&x={{literal}}"
          - match: {tool: lookup}
            prefire: true
            rest:
              method: post
              url: "https://shop.example.com/lookup"
              body: {id: "{order_id}", note: "order {order_id}", tags: ["{tag}"]}
        budgets:
          max_concurrent: 8
          max_per_turn: 0
          min_probability: 0.5
          max_waste_share: 0.25
          min_waste_samples: 4
        """
    )
    weather, lookup = rs.rules
    assert (weather.ttl, weather.reuse, weather.invalidates) == (2.5, 3, ("cache_*",))
    assert rs.budgets == Budgets(8, 0, 0.5, 0.25, 4)
    assert not rs.budgets.backs_off(fired=3, wasted=3)  # too few to judge
    assert rs.budgets.backs_off(fired=4, wasted=2)
    assert not rs.budgets.backs_off(fired=4, wasted=1)

    assert weather.rest is not None and lookup.rest is not None
    request = weather.rest.render({"city": "São Paulo/SP", "units": True})
    assert request.method == "GET" and request.body is None
    assert request.url == "https://w.example.com/v1/S%C3%A3o%20Paulo%2FSP?units=true&x={literal}"
    request = lookup.rest.render({"order_id": 42, "tag": {"a": 1}})
    assert request.method == "POST"
    assert request.body == {"id": 42, "note": "order 42", "tags": [{"a": 1}]}
    with pytest.raises(KeyError):
        RestTemplate("https://x.example.com/{missing}").render({})


# -- errors: every kind, at its line ----------------------------------------------------


def test_every_problem_is_reported_with_its_line_and_key() -> None:
    found = problems(
        """
        rules:
          - match: {tol: "search_*"}
            prefire: true
          - match: {tool: "get_["}
            prefire: yes
            ttl: -5
            reuse: 0
            color: red
          - match:
              tool: x
              annotations: {readOnlyHnt: true, idempotentHint: 1}
            trust_annotations: true
            prefire: true
          - match: {tool: y}
          - match: {}
            prefire: true
          - match: {method: GETT, host: "https://api.example.com"}
            prefire: true
          - match: {tool: "search_*"}
            prefire: true
            invalidates: [ok, 3]
            rest: {method: GET, url: "https://{host}/q?x={x:>3}", body: {q: "{q}"}}
          - search_*
        budgets:
          max_concurrent: 0
          min_probability: 1.5
          max_waste: 0.1
        """
    )
    assert found == [
        "r.yaml:3: match.tol: unknown key (did you mean tool?); "
        "known keys here: tool, server, annotations, method, host",
        'r.yaml:5: match.tool: "get_[": unclosed "["; write [[] for a literal [',
        'r.yaml:6: prefire: must be true or false, not "yes"',
        "r.yaml:7: ttl: must be more than 0, not -5",
        "r.yaml:8: reuse: must be at least 1, not 0",
        "r.yaml:9: color: unknown key; known keys here: "
        "match, prefire, cost, trust_annotations, ttl, reuse, shared_learning, invalidates, "
        "rest, session",
        "r.yaml:12: match.annotations.readOnlyHnt: unknown MCP annotation (did you mean "
        "readOnlyHint?); known: readOnlyHint, destructiveHint, idempotentHint, openWorldHint",
        "r.yaml:12: match.annotations.idempotentHint: must be true or false, not 1",
        "r.yaml:15: prefire: missing; every rule says prefire: true or prefire: false",
        "r.yaml:16: match: needs one of tool, server, annotations, method, host "
        '(tool: "*" matches every tool)',
        "r.yaml:18: match.method: unknown HTTP method GETT; known: "
        "CONNECT, DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, QUERY, TRACE",
        'r.yaml:18: match.host: "https://api.example.com": a host name glob, '
        'without scheme, port or path, e.g. "*.example.com"',
        "r.yaml:22: invalidates: must be a glob string, not 3",
        'r.yaml:23: rest.url: placeholder {x:>3} in "https://{host}/q?x={x:>3}" '
        "must be an argument name, like {city}",
        "r.yaml:23: rest.body: a GET request carries no body; "
        "use POST, or put the arguments in url",
        "r.yaml:23: rest: a declared binding is for one tool: "
        "match.tool must name it, without globs",
        'r.yaml:24: rules: each rule must be a mapping with match: and prefire:, not "search_*"',
        "r.yaml:26: budgets.max_concurrent: must be at least 1, not 0",
        "r.yaml:27: budgets.min_probability: must be between 0 and 1, not 1.5",
        "r.yaml:28: budgets.max_waste: unknown key (did you mean max_waste_share?); known keys "
        "here: max_concurrent, max_per_turn, min_probability, max_waste_share, min_waste_samples, "
        "max_chain_depth",
    ]


def test_rest_url_may_not_choose_the_host() -> None:
    assert problems(
        """
        rules:
          - match: {tool: fetch}
            prefire: true
            rest: {url: "https://{host}/x"}
        """
    ) == [
        'r.yaml:5: rest.url: "https://{host}/x": placeholders may not be in the host; '
        "only in the path, query or body"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["r.yaml:1: rules: missing; `rules: []` denies every tool"]),
        ("- a\n", ["r.yaml:1: rules: the file must be a mapping with rules:, not a list"]),
        ("rules: 3\n", ["r.yaml:1: rules: must be a list of rules, not 3"]),
        (
            "rulez: []\n",
            [
                "r.yaml:1: rulez: unknown key (did you mean rules?); "
                "known keys here: rules, budgets",
                "r.yaml:1: rules: missing; `rules: []` denies every tool",
            ],
        ),
        (
            "rules:\n  - match: {tool: a}\n    prefire: true\n    prefire: false\n",
            [
                'r.yaml:4: yaml: found duplicate key "prefire" with value "False" '
                '(original value: "True") (while constructing a mapping at line 2)'
            ],
        ),
        (
            "rules: [\n",
            [
                "r.yaml:2: yaml: expected the node content, but found '<stream end>' "
                "(while parsing a flow node)"
            ],
        ),
        (
            "rules:\n  - match: {tool: a}\n    prefire: true\n    trust_annotations: true\n",
            ["r.yaml:4: trust_annotations: has no effect without match.annotations"],
        ),
        (
            "rules:\n  - match: {tool: a}\n    prefire: true\n    ttl: .inf\n",
            ["r.yaml:4: ttl: must be a finite number, not inf"],
        ),
        (
            "rules:\n  - prefire: true\n",
            ['r.yaml:2: match: missing; say which tools the rule is for, e.g. {tool: "search_*"}'],
        ),
    ],
)
def test_file_level_problems(text: str, expected: list[str]) -> None:
    with pytest.raises(RulesError) as info:
        load_rules(text, "r.yaml")
    assert info.value.problems == expected


def test_commented_out_sections_are_empty() -> None:
    rs = load_rules("rules:\n#  - match: {tool: a}\nbudgets:\n#  max_per_turn: 1\n", "r.yaml")
    assert rs.rules == () and rs.budgets == Budgets()


# -- CLI ----------------------------------------------------------------------------


def prefire(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefire.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_check(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL)
    done = prefire("rules", "check", str(good))
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{good}: 2 rules OK\n", "")

    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("ttl: 60", "ttl: -1").replace("prefire: false", "prefire: 0"))
    done = prefire("rules", "check", str(bad))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{bad}:4: ttl: must be more than 0, not -1",
        f"{bad}:6: prefire: must be true or false, not 0",
    ]

    done = prefire("rules", "check", str(tmp_path / "missing.yaml"))
    assert done.returncode == 1
    assert done.stderr == f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory\n"


def test_cli_explain(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        MINIMAL
        + textwrap.indent(
            textwrap.dedent(
                """\
                - match: {annotations: {readOnlyHint: true}}
                  trust_annotations: true
                  prefire: true
                """
            ),
            "  ",
        )
    )
    done = prefire("rules", "explain", str(path), "search_flights")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"search_flights may run early: rule 1 at {path}:2 decides",
        '    - match: {tool: "search_*"}',
        "      prefire: true",
        "      ttl: 60",
        'why: tool "search_flights" matches "search_*"',
        "ttl 60s, served at most 1 time(s), a wasted early call costs 0.25s",
    ]

    done = prefire("rules", "explain", str(path), "book_flight")
    assert (
        done.stdout.splitlines()[0] == f"book_flight may not run early: rule 2 at {path}:5 decides"
    )

    done = prefire("rules", "explain", str(path), "read_file")
    assert done.stdout.splitlines()[0] == "no rule matches read_file: denied by default"
    assert done.stdout.splitlines()[-1] == (
        f"  rule 3 at {path}:7: annotations: the tool has none (not an MCP tool, or not listed yet)"
    )

    done = prefire(
        "rules", "explain", str(path), "read_file", "--mcp-annotations", '{"readOnlyHint": true}'
    )
    assert done.stdout.splitlines()[0] == f"read_file may run early: rule 3 at {path}:7 decides"
    assert "why: readOnlyHint is true (annotations trusted by this rule)" in done.stdout

    done = prefire("rules", "explain", str(path), "x", "--mcp-annotations", "[1]")
    assert done.returncode == 2 and "must be a JSON object" in done.stderr

    path.write_text("rules:\n  - match: {tool: a}\n")
    done = prefire("rules", "explain", str(path), "a")
    assert done.returncode == 1
    assert (
        done.stderr
        == f"{path}:2: prefire: missing; every rule says prefire: true or prefire: false\n"
    )


# -- replay --rules ---------------------------------------------------------------------


def flight_sessions(path: Path, n: int = 12) -> None:
    """Search then book, the booking taking the flight id from the search result: the
    model soon predicts both calls exactly."""
    tools = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
        for name in ("search_flights", "book_flight")
    ]
    with path.open("w") as fh:
        for i in range(n):
            city, flight = f"City{i}", f"F{100 + 7 * i}"

            def call(cid: str, name: str, args: dict[str, str]) -> dict[str, object]:
                function = {"name": name, "arguments": json.dumps(args)}
                return {"id": cid, "type": "function", "function": function}

            messages = [
                {"role": "user", "content": f"Book me the first flight to {city}"},
                {
                    "role": "assistant",
                    "tool_calls": [call(f"a{i}", "search_flights", {"city": city})],
                },
                {
                    "role": "tool",
                    "tool_call_id": f"a{i}",
                    "content": json.dumps({"flights": [{"id": flight}]}),
                },
                {
                    "role": "assistant",
                    "tool_calls": [call(f"b{i}", "book_flight", {"flight_id": flight})],
                },
                {"role": "tool", "tool_call_id": f"b{i}", "content": '{"status": "booked"}'},
                {"role": "assistant", "content": "Booked."},
            ]
            fh.write(json.dumps({"id": f"s{i}", "tools": tools, "messages": messages}) + "\n")


def test_replay_with_rules_never_prefires_a_denied_tool(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions.jsonl"
    flight_sessions(sessions)
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(MINIMAL)

    def replay(*extra: str) -> dict:
        done = prefire("replay", str(sessions), "--json", *extra)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    without = replay()
    # without rules every unlabelled tool is eligible, and the booking is fired early
    assert without["tools"]["book_flight"]["prefired"] > 0

    result = replay("--rules", str(rules_file))
    book, search = result["tools"]["book_flight"], result["tools"]["search_flights"]
    assert book["calls"] == 12
    assert (book["eligible"], book["prefired"], book["hits"]) == (0, 0, 0)
    assert search["eligible"] == 12 and search["hits"] > 0
    assert result["eligible_calls"] == 12
    assert result["prefired"] == search["prefired"]

    # budgets come from the file: nothing reaches a probability above 1
    rules_file.write_text(MINIMAL + "budgets:\n  min_probability: 1\n")
    assert replay("--rules", str(rules_file))["prefired"] == 0

    rules_file.write_text("rules: [\n")
    done = prefire("replay", str(sessions), "--rules", str(rules_file))
    assert done.returncode == 2 and f"{rules_file}:2: yaml:" in done.stderr


def test_patterns_rules_stays_pure() -> None:
    code = (
        "import sys, prefire.rules.ruleset\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('mitmproxy', 'asyncio', 'aiohttp')"
        " or m.startswith('prefire.proxy')]\n"
        "print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# -- cost, and min_probability from older files -------------------------------------


def test_cost_is_per_rule_with_a_default_for_reads() -> None:
    rs = rules(
        """
        rules:
          - match: {tool: "paid_*"}
            prefire: true
            cost: 4
          - match: {tool: "*"}
            prefire: true
        """
    )
    paid, rest = rs.rules
    assert (paid.cost, rest.cost) == (4.0, DEFAULT_COST)
    assert rs.cost("paid_lookup") == 4.0 and rs.cost("search") == DEFAULT_COST
    assert rs.warnings == ()


def test_cost_must_be_a_non_negative_number_on_a_rule_that_fires() -> None:
    assert problems(
        """
        rules:
          - match: {tool: a}
            prefire: true
            cost: -1
          - match: {tool: b}
            prefire: true
            cost: cheap
          - match: {tool: c}
            prefire: false
            cost: 2
        """
    ) == [
        "r.yaml:5: cost: must be at least 0, not -1",
        'r.yaml:8: cost: must be a number, not "cheap"',
        "r.yaml:11: cost: prices a wasted early call; a rule with prefire: false starts none",
    ]


def test_min_probability_still_loads_as_a_floor_with_a_deprecation_warning(
    tmp_path: Path,
) -> None:
    text = MINIMAL + "budgets:\n  min_probability: 0.3\n"
    rs = load_rules(text, "old.yaml")
    assert rs.budgets.min_probability == 0.3
    assert len(rs.warnings) == 1
    assert rs.warnings[0].startswith("old.yaml:8: budgets.min_probability: deprecated")
    assert Budgets().min_probability == 0.0  # new files: cost alone decides

    path = tmp_path / "old.yaml"
    path.write_text(text)
    done = prefire("rules", "check", str(path))
    assert done.returncode == 0 and done.stdout == f"{path}: 2 rules OK\n"
    assert done.stderr.startswith(f"warning: {path}:8: budgets.min_probability: deprecated")
