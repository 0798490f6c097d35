"""Learning from one example: a dependency or a tool sequence seen once is predicted in
the next session, with a probability learned from how often one-shot guesses held, and
dropped when it fails. And the first calls of a session, from the user's words."""

from __future__ import annotations

from typing import Any

from prefire.patterns.dataflow import ArgHypotheses, discover
from prefire.patterns.memory import SessionMemory
from prefire.patterns.model import Candidate, PatternModel
from prefire.patterns.oneshot import OneShot, kind
from tests.patterns_util import Script, feed

TOOLS = ["lookup_order", "get_item", "refund"]


def order_session(sid: str, order: str, item: str, scope: str = "s") -> Script:
    s = Script(sid, TOOLS, scope=scope).user(f"Where is my order {order}? It is late.")
    s.turn(("lookup_order", {"order_id": order}, {"order": order, "items": [{"item_id": item}]}))
    s.turn(("get_item", {"item_id": item}, {"item_id": item, "status": "shipped"}))
    return s


def find(cands: list[Candidate], tool: str, args: dict[str, Any]) -> Candidate | None:
    return next((c for c in cands if c.tool == tool and c.arguments == args), None)


def test_a_dependency_seen_once_is_predicted_in_the_next_session() -> None:
    m = PatternModel()
    feed(m, order_session("a", "#W100", "I-1"))
    # second session: after lookup_order, get_item's argument comes from its result
    got = feed(m, order_session("b", "#W200", "I-2"), predict_at=1)
    c = find(got, "get_item", {"item_id": "I-2"})
    assert c is not None, got
    assert got[0] is c
    # one example is a guess, not a certainty
    assert 0.05 < c.probability < 0.9


def test_a_tool_sequence_and_its_argument_from_the_users_words_seen_once() -> None:
    m = PatternModel()
    feed(m, order_session("a", "#W100", "I-1"))
    # the first call of the next session: the tool from history, the argument from the text
    got = feed(m, order_session("b", "#W777", "I-9"), predict_at=0)
    assert find(got, "lookup_order", {"order_id": "#W777"}) is not None, got


def test_a_one_shot_source_that_fails_is_dropped() -> None:
    mem = SessionMemory()
    mem.user_texts.append("my order #W1 please")
    h = ArgHypotheses()
    h.observe("#W1", mem, discover("#W1", mem))
    assert h.fresh and not h.ranked
    prior = 0.5
    assert h.values(mem, prior=lambda s: prior)[0][0] == "#W1"
    # next session: the value is in the text again, but the call used another one
    mem2 = SessionMemory()
    mem2.user_texts.append("my order #W2 please")
    h.observe("ZZZ", mem2, discover("ZZZ", mem2))
    assert not any(src[0] == "user" for src in h.fresh)  # tried now: no longer fresh
    # every source that gave #W2 failed once: it scores below an untried guess
    user = [(src, score) for src, score, _ in h.ranked if src[0] == "user"]
    assert user and all(score < prior for _, score in user)
    mem3 = SessionMemory()
    mem3.user_texts.append("my order #W3 please")
    values = h.values(mem3, prior=lambda s: prior)
    assert values[0][0] == "ZZZ"  # the value that held (a constant, untried) leads


def test_one_shot_rates_are_learned_per_kind_and_shared_across_applications() -> None:
    shot = OneShot()
    res = ("res", "lookup_order", 0, ("items", 0, "item_id"), None)
    const = ("const", '"x"')
    assert kind(res) == ("res", False) and kind(const) == ("const",)
    for i in range(40):
        shot.observe(("app", i % 4), res, True)
        shot.observe(("app", i % 4), const, i % 5 == 0)
    new_app = ("app", "never seen")
    assert shot.prior(new_app, res) > 0.9
    assert shot.prior(new_app, const) < 0.3
    # an application whose own first trials disagree moves away from the shared rate
    for _ in range(20):
        shot.observe("odd", res, False)
    assert shot.prior("odd", res) < 0.3 < shot.prior(new_app, res)


def test_one_shot_learning_transfers_to_an_application_never_seen() -> None:
    """What other applications taught about one-shot sources is used by a new one."""
    m = PatternModel()
    for n in range(6):  # other applications (other tool sets) teach that results pass on
        tools = [f"find_{n}", f"read_{n}"]
        for i in range(3):
            s = Script(f"o{n}{i}", tools).user("find it please")
            s.turn((f"find_{n}", {"q": "it"}, {"hits": [{"id": f"{n}-{i}"}]}))
            s.turn((f"read_{n}", {"id": f"{n}-{i}"}, {"ok": True}))
            feed(m, s)
    taught = m.one_shot.prior("new", ("res", "t", 0, ("hits", 0, "id"), None))
    assert taught > 0.7
    fresh = PatternModel()
    assert fresh.one_shot.prior("new", ("res", "t", 0, ("hits", 0, "id"), None)) < taught


def test_a_tools_own_record_corrects_its_calibrated_probability() -> None:
    from prefire.patterns.calibration import ToolCalibration

    cal = ToolCalibration()
    app, pool = ("s", "app"), ("s", "*")
    assert cal.corrected(app, pool, "lookup", 0.3) == 0.3  # no record: unchanged
    for _ in range(40):  # given 0.3, lookup's candidates always came true
        cal.observe(app, pool, "lookup", 0.3, True)
        cal.observe(app, pool, "cd", 0.3, False)  # and cd's never
    assert cal.corrected(app, pool, "lookup", 0.3) > 0.5
    assert cal.corrected(app, pool, "cd", 0.3) < 0.1
    # another application of the scope starts from the pool's record, and its own
    # record takes over
    other = ("s", "other app")
    assert cal.corrected(other, pool, "lookup", 0.3) > 0.4
    for _ in range(40):
        cal.observe(other, pool, "lookup", 0.3, False)
    assert cal.corrected(other, pool, "lookup", 0.3) < 0.3
    # another scope's pool is its own: nothing learned here moves it
    assert cal.corrected(("t", "app"), ("t", "*"), "lookup", 0.3) == 0.3
    short = ToolCalibration()
    short.observe(app, pool, "lookup", 0.3, True)  # one candidate: a small step, not a verdict
    assert 0.3 < short.corrected(app, pool, "lookup", 0.3) < 0.6


def test_snapshot_keeps_the_learned_rates() -> None:
    from prefire.patterns import snapshot

    m = PatternModel()
    for i in range(3):
        feed(m, order_session(f"s{i}", f"#W{i}", f"I-{i}"), predict_at=1)
    again = snapshot.load(snapshot.dump(m))
    assert again.one_shot.shared == m.one_shot.shared and again.one_shot.shared
    assert dict(again.tool_calibration.tools.items()) == dict(m.tool_calibration.tools.items())
    assert dict(again.tool_calibration.tools.items())
