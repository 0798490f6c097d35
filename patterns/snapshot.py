"""Learned state as versioned bytes, so a restart keeps what was learned.

Only what was learned is saved (counts, hypotheses, latencies), never the
sessions in flight. Keys and sources are tuples; JSON has only lists, so they
are turned back into tuples on load. Sans-I/O: the caller writes the bytes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from prefire.patterns.controlflow import ContextCounts
from prefire.patterns.dataflow import ArgHypotheses, Stat
from prefire.patterns.intent import _App, _Word
from prefire.patterns.model import PatternModel

VERSION = 1


class SnapshotError(ValueError):
    """The bytes are not a snapshot this version can load."""


def dump(model: PatternModel) -> bytes:
    state = {
        "version": VERSION,
        "flow": [[k, c.total, c.next] for k, c in model.flow.table.items()],
        "intent": [
            [app, a.messages, [[w, e.seen, e.next] for w, e in a.words.items()]]
            for app, a in model.intent.apps.items()
        ],
        "trust": list(model.trust.items()),
        "calibration": list(model.calibrator.apps.items()),
        "args": [
            [k, [[src, st.hits, st.trials] for src, st in h.stats.items()]]
            for k, h in model.args.items()
        ],
        "keysets": [[k, list(c.items())] for k, c in model.keysets.items()],
        "offered": [[k, sorted(v)] for k, v in model.offered.items()],
        "width": list(model.width.items()),
        "repeats": list(model.repeats.items()),
        "texts_seen": list(model.texts_seen.items()),
        "tool_latency": list(model.latency.tool.items()),
        "llm_latency": list(model.latency.llm.items()),
        "tool_calibration": list(model.tool_calibration.tools.items()),
        "one_shot": [
            list(model.one_shot.shared.items()),
            [[app, list(table.items())] for app, table in model.one_shot.apps.items()],
        ],
        # counts per kind of schema prior and of stated fan-out count: no values
        "priors": [[k, st.hits, st.trials] for k, st in model.priors.stats.items()],
        "keyset_prior": [model.priors.keyset.hits, model.priors.keyset.trials],
        "affordance": [model.affordance.stat.hits, model.affordance.stat.trials],
        "rereads": [
            [model.rereads.shared.hits, model.rereads.shared.trials],
            [[k, st.hits, st.trials] for k, st in model.rereads.pairs.items()],
        ],
        "fanout": [
            [model.fanout.stated.hits, model.fanout.stated.trials],
            [model.fanout.every.hits, model.fanout.every.trials],
        ],
        "taken": [[k, list(c.items())] for k, c in model.fanout.taken.items()],
    }
    return orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS)


def load(data: bytes, model: PatternModel | None = None) -> PatternModel:
    """Fill `model` (or a new one) from a snapshot; raises SnapshotError saying why not."""
    try:
        state = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"not a snapshot: {exc}") from None
    if not isinstance(state, dict) or state.get("version") != VERSION:
        found = state.get("version") if isinstance(state, dict) else None
        raise SnapshotError(f"snapshot version {found!r}, this prefire reads version {VERSION}")
    m = model or PatternModel()
    try:
        for key, total, nxt in state["flow"]:
            m.flow.table[_tuple(key)] = ContextCounts(total, dict(nxt))
        for app, messages, words in state["intent"]:
            a = _App(messages)
            for w, seen, nxt in words:
                a.words[w] = _Word(seen, dict(nxt))
            m.intent.apps[_tuple(app)] = a
        for app, trust in state["trust"]:
            m.trust[_tuple(app)] = list(trust)
        for app, table in state["calibration"]:
            m.calibrator.apps[_tuple(app)] = [list(cell) for cell in table]
        for key, stats in state["args"]:
            h = ArgHypotheses()
            h.stats = {_tuple(src): Stat(hits, trials) for src, hits, trials in stats}
            h.rank()
            m.args[_tuple(key)] = h
        for key, counts in state["keysets"]:
            m.keysets[_tuple(key)] = Counter({_tuple(names): n for names, n in counts})
        for key, names in state["offered"]:
            m.offered[_tuple(key)] = frozenset(names)
        for key, width in state["width"]:
            m.width[_tuple(key)] = width
        for key, counts in state["repeats"]:
            m.repeats[_tuple(key)] = list(counts)
        for key, senders in state.get("texts_seen", ()):  # older snapshots lack it
            m.texts_seen[_tuple(key)] = tuple(senders)
        for key, seconds in state["tool_latency"]:
            m.latency.tool[_tuple(key)] = seconds
        for key, seconds in state["llm_latency"]:
            m.latency.llm[_tuple(key)] = seconds
        _load_rates(state, m)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise SnapshotError(f"snapshot is damaged: {exc!r}") from None
    return m


def _load_rates(state: dict[str, Any], m: PatternModel) -> None:
    """The learned rates, each absent from snapshots written before it was learned."""
    for key, cell in state.get("tool_calibration", []):
        m.tool_calibration.tools[_tuple(key)] = list(cell)
    shared, apps = state.get("one_shot", ([], []))
    m.one_shot.shared = {_tuple(k): list(cell) for k, cell in shared}
    for app, table in apps:
        m.one_shot.apps[_tuple(app)] = {_tuple(k): list(cell) for k, cell in table}
    for kind, hits, trials in state.get("priors", []):
        m.priors.stats[kind] = Stat(hits, trials)
    m.priors.keyset = Stat(*state.get("keyset_prior", [0.0, 0.0]))
    m.affordance.stat = Stat(*state.get("affordance", [0.0, 0.0]))
    shared, pairs = state.get("rereads", [[0.0, 0.0], []])
    m.rereads.shared = Stat(*shared)
    for key, hits, trials in pairs:
        m.rereads.pairs[_tuple(key)] = Stat(hits, trials)
    stated, every = state.get("fanout", [[0.0, 0.0], [0.0, 0.0]])
    m.fanout.stated, m.fanout.every = Stat(*stated), Stat(*every)
    for key, counts in state.get("taken", []):
        m.fanout.taken[_tuple(key)] = Counter({n: v for n, v in counts})


def _tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuple(v) for v in value)
    return value
