"""BFCL v4 multi-turn categories as OpenAI-messages sessions with real tool results.

BFCL ships, per entry, the user turns, the initial state of each involved API class and
(in possible_answer/) the ground-truth calls of every turn as Python call strings. This
module replays those calls against BFCL's own executable classes (one fresh instance
per class per entry, loaded with the entry's `initial_config`, as BFCL's
`execute_multi_turn_func_call` does) and records what they return.

BFCL v4 lists each turn's ground truth as a flat sequence; it does not say which calls
could go out together. Each call is therefore its own assistant step (one tool call per
message), which is also the only order that is safe for stateful calls such as `cd`
followed by `ls`. Should a later BFCL version nest a list inside a turn, that inner list
is taken as one parallel step.

BFCL does not say which tools are side-effect free. Labels are derived from the suite's
own behaviour instead: a tool is `write` if any ground-truth call of it changed its
instance's state, `read` if at least one call of it succeeded and none ever changed
state; tools never seen succeeding (most are never called) stay unlabelled.

The session's tool list is every function of the entry's involved classes, which is
what BFCL's own runner offers: `excluded_function` is not applied by BFCL either, and
the functions miss_func holds back until a later turn are included (which ones, from
which turn, is in meta["missed_function"]), since a session has one tool list.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import json
import pickle
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefire.replay.importers._common import CLOSING_TEXT, Call, Label, SessionBuilder, require

SUITE = "BFCL v4 (bfcl-eval)"
# --no-deps: bfcl-eval declares every provider SDK, torch-based retrievers etc. for its
# model runners; the multi-turn API classes need only mpmath (MathAPI).
PIP_ARGS = ("--no-deps bfcl-eval mpmath==1.3.0",)
CATEGORIES = (
    "multi_turn_base",
    "multi_turn_miss_func",
    "multi_turn_miss_param",
    "multi_turn_long_context",
)


@dataclass
class _Suite:
    """The parts of bfcl_eval this importer uses, imported once and lazily."""

    data: Path
    version: str
    class_modules: dict[str, str]
    doc_files: dict[str, str]
    stateless: frozenset[str]
    type_map: dict[str, str]
    additional_function_prompt: str


def _suite() -> _Suite:
    # Only pure modules: bfcl_eval.constants.eval_config creates result/score folders
    # inside site-packages on import, and model_handler pulls in every provider SDK.
    backend = require("bfcl_eval.constants.executable_backend_config", SUITE, PIP_ARGS)
    categories = require("bfcl_eval.constants.category_mapping", SUITE, PIP_ARGS)
    types = require("bfcl_eval.constants.type_mappings", SUITE, PIP_ARGS)
    prompts = require("bfcl_eval.constants.default_prompts", SUITE, PIP_ARGS)
    root = require("bfcl_eval", SUITE, PIP_ARGS)
    assert root.__file__ is not None
    return _Suite(
        data=Path(root.__file__).parent / "data",
        version=categories.VERSION_PREFIX,
        class_modules=dict(backend.CLASS_FILE_PATH_MAPPING),
        doc_files=dict(backend.MULTI_TURN_FUNC_DOC_FILE_MAPPING),
        stateless=frozenset(backend.STATELESS_CLASSES),
        type_map=dict(types.GORILLA_TO_OPENAPI),
        additional_function_prompt=prompts.DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC,
    )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# --- tools schema -----------------------------------------------------------------


def _schema(node: dict[str, Any], type_map: dict[str, str]) -> dict[str, Any]:
    """BFCL's parameter schema to JSON Schema: "dict"/"float"/"tuple"... become
    object/number/array through BFCL's own GORILLA_TO_OPENAPI table, recursively."""
    out = dict(node)
    out["type"] = type_map.get(node.get("type", "string"), "string")
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _schema(v, type_map) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        out["items"] = _schema(node["items"], type_map)
    return out


def openai_tool(doc: dict[str, Any], type_map: dict[str, str]) -> dict[str, Any]:
    """One BFCL function doc as an OpenAI chat `tools` entry (the `response` doc is
    dropped: chat-completions tools have no place for a return schema)."""
    params = _schema(doc["parameters"], type_map)
    params["type"] = "object"
    params.setdefault("properties", {})
    return {
        "type": "function",
        "function": {
            "name": doc["name"],
            "description": doc.get("description", ""),
            "parameters": params,
        },
    }


# --- execution --------------------------------------------------------------------


# Private memo tables that a read refills: TravelAPI.get_flight_cost rewrites
# _flight_cost_lookup on every call, and book_flight calls get_flight_cost itself right
# before reading it, so its contents never change what a later call returns.
_CACHES = frozenset({"_flight_cost_lookup"})


def _state(instance: object) -> bytes | None:
    """A byte snapshot of an instance's state, to tell reads from writes.

    Private attributes count (`cd` only moves `_current_dir`, yet every later call sees
    it). Left out: random.Random members, as drawing a number (a simulated sensor
    reading) is not an application side effect, and the memo tables in _CACHES.
    None when the state does not pickle.
    """
    attrs = {
        k: v
        for k, v in vars(instance).items()
        if k not in _CACHES and not isinstance(v, random.Random)
    }
    try:
        return pickle.dumps(attrs, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None


def _failed(result: Any) -> bool:
    # BFCL's classes report refusals as {"error": ...} rather than raising.
    return isinstance(result, dict) and "error" in result


def result_text(result: Any) -> str:
    """Result text as BFCL hands it to the model, except that lists are JSON too.

    BFCL passes strings through, JSON-encodes dicts and str()s the rest; a list's Python
    repr is not parseable by a data-flow learner, so lists go through JSON as well.
    """
    if isinstance(result, str):
        return result
    if isinstance(result, dict | list | tuple):
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


@dataclass
class _Evidence:
    """Per tool: did any call change state, did any call succeed without doing so."""

    wrote: set[str] = field(default_factory=set)
    clean: set[str] = field(default_factory=set)

    def labels(self) -> dict[str, Label]:
        out: dict[str, Label] = {name: "write" for name in self.wrote}
        out.update({name: "read" for name in self.clean - self.wrote})
        return out


class _Runtime:
    """The executable API instances of one entry, called directly by method name."""

    def __init__(self, suite: _Suite, entry: dict[str, Any], long_context: bool) -> None:
        self.methods: dict[str, tuple[object, Callable[..., Any]]] = {}
        for class_name in entry["involved_classes"]:
            module = importlib.import_module(suite.class_modules[class_name])
            instance = getattr(module, class_name)()
            if class_name not in suite.stateless:
                config = entry.get("initial_config", {}).get(class_name, {})
                # Deep copy: _load_scenario keeps references into the config it is given.
                instance._load_scenario(copy.deepcopy(config), long_context=long_context)
            # Later classes win on a name clash, as in BFCL's method-to-instance mapping.
            for name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not name.startswith("_"):
                    self.methods[name] = (instance, method)

    def parse(self, source: str) -> Call:
        """A ground-truth call string as (name, keyword arguments).

        Positional arguments (`sort('a.txt')`) are named through the method's signature
        so every tool call carries a JSON object, as a model's tool call would.
        """
        node = ast.parse(source.strip(), mode="eval").body
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            raise ValueError(f"not a plain function call: {source!r}")
        name = node.func.id
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        if name not in self.methods:
            raise ValueError(f"ground truth calls {name!r}, which no involved class defines")
        bound = inspect.signature(self.methods[name][1]).bind(*args, **kwargs)
        return Call(name, dict(bound.arguments))

    def run(self, call: Call, evidence: _Evidence) -> str:
        instance, method = self.methods[call.name]
        before = _state(instance)
        try:
            result: Any = method(**call.arguments)
            failed = _failed(result)
        except Exception as exc:  # the model sees the error text, as in BFCL
            result, failed = f"Error during execution: {exc}", True
        after = _state(instance)
        if before is not None and after is not None:
            if before != after:
                evidence.wrote.add(call.name)
            elif not failed:
                evidence.clean.add(call.name)
        return result_text(result)


def _steps(turn: Sequence[Any]) -> Iterator[list[str]]:
    """Flat ground truth: one call per step; an inner list: calls issued together."""
    for item in turn:
        yield list(item) if isinstance(item, list) else [item]


def _session(
    suite: _Suite,
    entry: dict[str, Any],
    answer: dict[str, Any],
    category: str,
    tools: list[dict[str, Any]],
    evidence: _Evidence,
) -> SessionBuilder:
    runtime = _Runtime(suite, entry, long_context="long_context" in category)
    missed = {int(k): list(v) for k, v in entry.get("missed_function", {}).items()}
    session = SessionBuilder(
        id=entry["id"],
        tools=tools,
        meta={
            "suite": "bfcl",
            "version": suite.version,
            "category": category,
            "involved_classes": entry["involved_classes"],
            "turns": len(entry["question"]),
            # The tool list is the union over the session; in miss_func BFCL offers
            # these only from the given turn on.
            "missed_function": {str(k): v for k, v in missed.items()},
            "excluded_function": entry.get("excluded_function", []),
            "closing_text": CLOSING_TEXT,
        },
    )
    turns = answer["ground_truth"]
    if len(turns) != len(entry["question"]):
        raise ValueError(
            f"{entry['id']}: {len(turns)} ground-truth turns for {len(entry['question'])} "
            "question turns"
        )
    for idx, (question, turn) in enumerate(zip(entry["question"], turns, strict=True)):
        if not question and idx in missed:
            # BFCL's own inference loop sends this when it adds the held-out functions.
            session.user(suite.additional_function_prompt)
        for msg in question:
            if msg["role"] == "system":
                session.system(msg["content"])
            else:
                session.user(msg["content"])
        for step in _steps(turn):
            calls = [runtime.parse(src) for src in step]
            session.step(calls, lambda c: runtime.run(c, evidence))
        session.assistant_text()
    return session


def iter_sessions(
    categories: Sequence[str] = CATEGORIES, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """Sessions of the given categories in BFCL's order, at most `limit` of them.

    Every entry of the categories is executed even under `limit`, because the read/write
    labels come from all of them and should not change with the sample size. The suite
    is imported and the categories checked before this returns, so a missing suite
    fails before any output file is opened.
    """
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown BFCL category {unknown}; choose from {list(CATEGORIES)}")
    suite = _suite()
    data: list[tuple[str, list[dict[str, Any]], dict[str, dict[str, Any]]]] = []
    for category in categories:
        entries = _read_jsonl(suite.data / f"{suite.version}_{category}.json")
        answer_file = suite.data / "possible_answer" / f"{suite.version}_{category}.json"
        data.append((category, entries, {a["id"]: a for a in _read_jsonl(answer_file)}))
    # The API classes have import-time dependencies of their own (MathAPI: mpmath).
    involved = {c for _, entries, _ in data for e in entries for c in e["involved_classes"]}
    for class_name in sorted(involved):
        require(suite.class_modules[class_name], SUITE, PIP_ARGS)
    return _generate(suite, data, limit)


def _generate(
    suite: _Suite,
    data: list[tuple[str, list[dict[str, Any]], dict[str, dict[str, Any]]]],
    limit: int | None,
) -> Iterator[dict[str, Any]]:
    docs: dict[str, list[dict[str, Any]]] = {}
    evidence = _Evidence()
    built: list[SessionBuilder] = []
    for category, entries, answers in data:
        for entry in entries:
            tools: list[dict[str, Any]] = []
            for class_name in entry["involved_classes"]:
                if class_name not in docs:
                    path = suite.data / "multi_turn_func_doc" / suite.doc_files[class_name]
                    docs[class_name] = _read_jsonl(path)
                tools.extend(openai_tool(d, suite.type_map) for d in docs[class_name])
            built.append(_session(suite, entry, answers[entry["id"]], category, tools, evidence))
    labels = evidence.labels()
    source = "state change of the ground-truth calls of " + ", ".join(c for c, _, _ in data)
    for session in built[:limit] if limit is not None else built:
        session.tool_labels = dict(labels)
        session.meta["tool_labels_source"] = source
        yield session.to_dict()
