"""The agents' tasks and the scripted model's play of them: tool chains a real agent runs,
each call's arguments taken from what the earlier calls really returned.

- owners: search_docs(query from the user's words) -> get_doc of each of the top N hits
  (ids from the search) -> get_team of each document's team -> the answer.
- offsite: search_venues(query) -> get_venue of each of the top N -> get_forecast(the
  venue's city, the user's date) of each -> the answer.
- ticket: search_docs -> get_doc of the top hit -> get_team -> create_ticket (a write,
  never run early) -> the answer.

Calls of one turn are parallel, as models emit them.
"""

from __future__ import annotations

import random
from typing import Any

from prefire.proxy.demo.scripted_llm import Seen, TemplateScript, Turn

TEMPLATES: dict[str, str] = {
    "owners": "Search our docs for {topic} and tell me which teams own the top {n} results.",
    "offsite": "Find venues for a {topic} offsite and give me the forecast for {date} "
    "at each of the top {n}.",
    "ticket": "Search our docs for {topic} and open a ticket titled '{title}' with the team "
    "that owns the top result.",
}
GAVE_UP = "I could not finish this task"
_TOPICS = (
    "rate limits",
    "password resets",
    "refund policy",
    "cache invalidation",
    "on-call handover",
    "data retention",
    "webhook retries",
    "feature flags",
    "incident reviews",
    "quarterly planning",
    "team building",
    "hack week",
    "database failover",
    "api versioning",
    "log sampling",
    "sso setup",
)


def make_tasks(
    n: int, seed: int, kinds: tuple[str, ...] = tuple(TEMPLATES)
) -> list[dict[str, str]]:
    """`n` tasks cycling through `kinds`, each with its own topic (so no task's write
    changes what another reads), ids t1-owners, t2-offsite..."""
    rng = random.Random(f"{seed}|agent-tasks")
    topics = [_TOPICS[k % len(_TOPICS)] for k in rng.sample(range(max(n, len(_TOPICS))), n)]
    tasks = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        params = {
            "topic": topics[i],
            "n": str(rng.choice((2, 3))),
            "date": f"2026-0{rng.randrange(5, 10)}-{rng.randrange(1, 29):02d}",
            "title": f"Review {topics[i]} ({seed}-{i + 1})",
        }
        tasks.append({"id": f"t{i + 1}-{kind}", "prompt": TEMPLATES[kind].format(**params)})
    return tasks


def _owners(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        return [("search_docs", {"query": p["topic"]})]
    top = int(p["n"])
    if step == 1:
        hits = seen["search_docs"][-1]["hits"][:top]
        return [("get_doc", {"doc_id": h["doc_id"]}) for h in hits]
    docs = seen["get_doc"][-top:]
    teams = list(dict.fromkeys(d["team_id"] for d in docs))
    if step == 2:
        return [("get_team", {"team_id": t}) for t in teams]
    owner = {t["team_id"]: t for t in seen["get_team"][-len(teams) :]}
    return "; ".join(
        f"{d['doc_id']} is owned by {owner[d['team_id']]['name']} "
        f"(lead {owner[d['team_id']]['lead']}, {owner[d['team_id']]['channel']})"
        for d in docs
    )


def _offsite(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        return [("search_venues", {"query": p["topic"]})]
    top = int(p["n"])
    if step == 1:
        venues = seen["search_venues"][-1]["venues"][:top]
        return [("get_venue", {"venue_id": v["venue_id"]}) for v in venues]
    venues = seen["get_venue"][-top:]
    if step == 2:
        return [("get_forecast", {"city": v["city"], "date": p["date"]}) for v in venues]
    weather = {w["city"]: w for w in seen["get_forecast"][-top:]}
    return "; ".join(
        f"{v['venue_id']} in {v['city']} (up to {v['capacity']} people, EUR {v['price_eur']}): "
        f"{weather[v['city']]['sky']}, {weather[v['city']]['low_c']}-"
        f"{weather[v['city']]['high_c']} C"
        for v in venues
    )


def _ticket(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        return [("search_docs", {"query": p["topic"]})]
    if step == 1:
        return [("get_doc", {"doc_id": seen["search_docs"][-1]["hits"][0]["doc_id"]})]
    doc = seen["get_doc"][-1]
    if step == 2:
        return [("get_team", {"team_id": doc["team_id"]})]
    team = seen["get_team"][-1]
    if step == 3:
        return [("create_ticket", {"team_id": team["team_id"], "title": p["title"]})]
    ticket: dict[str, Any] = seen["create_ticket"][-1]
    return (
        f"Opened {ticket['ticket_id']} with {team['name']} (on call: {team['oncall']}) "
        f"about {doc['doc_id']}."
    )


SCRIPT = TemplateScript(
    templates=TEMPLATES,
    scripts={"owners": _owners, "offsite": _offsite, "ticket": _ticket},
    gave_up=GAVE_UP,
    unknown="I can search the docs, find venues and open tickets.",
)
