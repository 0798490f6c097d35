"""The tool servers' world for the agent benchmarks: an internal docs search with the teams
that own each document, and offsite venues with their weather forecast. Every answer is a
function of the seed and the arguments (and, for tickets, of the writes made so far), so two
runs of one workload see the same results whoever calls a tool and when.

Standard library only: the tool server runs in the agents' own venvs (mcp 1.x or 2.x), the
scripted model in prefire's.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

# Seconds each tool takes at latency scale 1: about what an internal search or a weather
# API takes, and about as long as the model thinks between calls.
LATENCY_S: dict[str, float] = {
    "search_docs": 1.3,
    "get_doc": 0.9,
    "get_team": 0.6,
    "search_venues": 1.4,
    "get_venue": 0.8,
    "get_forecast": 1.1,
    "create_ticket": 0.5,
}
READ_TOOLS = ("search_docs", "get_doc", "get_team", "search_venues", "get_venue", "get_forecast")
WRITE_TOOLS = ("create_ticket",)
DESCRIPTIONS: dict[str, str] = {
    "search_docs": "Search the internal documentation. Returns the best hits, best first.",
    "get_doc": "One document by its doc_id (from search_docs): title, owning team, summary.",
    "get_team": "One team by its team_id: name, lead, who is on call, chat channel.",
    "search_venues": "Search offsite venues. Returns the best matches, best first.",
    "get_venue": "One venue by its venue_id (from search_venues): city, capacity, price.",
    "get_forecast": "Weather forecast for a city on a date (YYYY-MM-DD).",
    "create_ticket": "Open a ticket with a team (writes to the ticket system).",
}

_TEAMS = (
    "billing",
    "identity",
    "payments",
    "search",
    "storage",
    "observability",
    "mobile",
    "growth",
    "infra",
    "security",
)
_PEOPLE = ("Ada Moreau", "Ben Okafor", "Chloe Silva", "Dev Tanaka", "Elena Novak", "Farid Haddad")
_CITIES = ("Lisbon", "Porto", "Seville", "Annecy", "Bled", "Ghent", "Bergen", "Trieste")
_SKIES = ("sunny", "partly cloudy", "overcast", "light rain", "thunderstorms", "windy")
_HITS = 5


class ToolError(Exception):
    """A call the tool refuses: the MCP server answers it as a tool error."""


def _digest(*parts: object) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=6).hexdigest()


def _slug(text: str) -> str:
    return "-".join(text.lower().split())[:24]


class World:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.tickets: dict[str, dict[str, Any]] = {}

    def _rng(self, *parts: object) -> random.Random:
        return random.Random("|".join(map(str, (self.seed, *parts))))

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if tool not in LATENCY_S:
            raise ToolError(f"no tool {tool!r}")
        return getattr(self, tool)(**arguments)

    def search_docs(self, query: str) -> dict[str, Any]:
        rng = self._rng("docs", query.lower())
        kinds = ("runbook", "design", "FAQ", "guide")
        hits = [
            {
                "doc_id": f"doc-{_slug(query)}-{_digest(self.seed, query, k)}",
                "title": f"{query.capitalize()}: {rng.choice(kinds)}",
                "score": round(1 - 0.07 * k - rng.random() * 0.05, 3),
            }
            for k in range(_HITS)
        ]
        return {"query": query, "hits": hits}

    def get_doc(self, doc_id: str) -> dict[str, Any]:
        if not doc_id.startswith("doc-"):
            raise ToolError(f"no document {doc_id!r}; search_docs lists valid ids")
        rng = self._rng("doc", doc_id)
        team = rng.choice(_TEAMS)
        return {
            "doc_id": doc_id,
            "team_id": f"team-{team}",
            "updated": f"2026-{rng.randrange(1, 12):02d}-{rng.randrange(1, 29):02d}",
            "words": rng.randrange(300, 6000),
            "summary": f"How the {team} team handles {doc_id.split('-')[1]}.",
        }

    def get_team(self, team_id: str) -> dict[str, Any]:
        name = team_id.removeprefix("team-")
        if name not in _TEAMS:
            raise ToolError(f"no team {team_id!r}")
        rng = self._rng("team", team_id)
        return {
            "team_id": team_id,
            "name": name.capitalize(),
            "lead": rng.choice(_PEOPLE),
            "oncall": rng.choice(_PEOPLE),
            "channel": f"#{name}-help",
        }

    def search_venues(self, query: str) -> dict[str, Any]:
        rng = self._rng("venues", query.lower())
        venues = [
            {
                "venue_id": f"ven-{_digest(self.seed, query, k)}",
                "name": f"{rng.choice(('Casa', 'Villa', 'Lodge', 'Quinta'))} {k + 1}",
                "rating": round(4.9 - 0.1 * k, 1),
            }
            for k in range(_HITS)
        ]
        return {"query": query, "venues": venues}

    def get_venue(self, venue_id: str) -> dict[str, Any]:
        if not venue_id.startswith("ven-"):
            raise ToolError(f"no venue {venue_id!r}; search_venues lists valid ids")
        rng = self._rng("venue", venue_id)
        return {
            "venue_id": venue_id,
            "city": rng.choice(_CITIES),
            "capacity": rng.randrange(12, 120),
            "price_eur": rng.randrange(900, 9000, 50),
        }

    def get_forecast(self, city: str, date: str) -> dict[str, Any]:
        rng = self._rng("forecast", city.lower(), date)
        high = rng.randrange(8, 34)
        return {
            "city": city,
            "date": date,
            "sky": rng.choice(_SKIES),
            "high_c": high,
            "low_c": high - rng.randrange(4, 12),
        }

    def create_ticket(self, team_id: str, title: str) -> dict[str, Any]:
        self.get_team(team_id)
        ticket_id = "TCK-" + _digest(self.seed, team_id, title).upper()
        if ticket_id in self.tickets:
            raise ToolError(f"ticket {ticket_id} already exists")
        self.tickets[ticket_id] = {"ticket_id": ticket_id, "team_id": team_id, "title": title}
        return {**self.tickets[ticket_id], "status": "open"}
