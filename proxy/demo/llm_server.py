"""The demo's model: scripted travel and customer-support tasks (see scripted_llm.py for
the server and its wire formats).

From each request the server works out the task (the user's message, matched against the
task templates) and the step (how many tool-call turns the conversation already holds); the
functions below give the next turn: tool calls whose arguments are taken from the tool
results in the conversation (the cheapest flight's id from a search becomes get_flight's
argument), or the final answer, written from those results.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence

from prefire.proxy.demo import scripted_llm
from prefire.proxy.demo.scripted_llm import Seen, TemplateScript, Turn
from prefire.proxy.demo.tools import AIRPORTS

TEMPLATES: dict[str, str] = {
    "trip": "Find the cheapest flight from {origin} to {destination} on {date}, "
    "and tell me the weather in {city} that day.",
    "cancel": "Customer {user_id} wants to cancel their most recent order. "
    "Cancel it and email them a confirmation with the refund amount.",
    "book": "Book the cheapest flight from {origin} to {destination} on {date} "
    "for customer {user_id}, then email them the booking confirmation.",
    "status": "What is the status of the two most recent orders of customer {user_id}?",
    "research": "Compare the cheapest flights from {origin} to {destination} on {date} and "
    "the two days after, with the weather in {city} on each of those days.",
}
# Task kinds per workload: "mixed" is what a support agent sees; "reads" is tool-heavy,
# every call side-effect free.
WORKLOADS: dict[str, tuple[str, ...]] = {
    "mixed": ("trip", "cancel", "book", "status", "research"),
    "reads": ("trip", "status", "research"),
}
# The final answer of a task whose tool results lacked what the script needs.
GAVE_UP = "I could not finish this task"


def make_tasks(
    n: int, seed: int, user_ids: Sequence[str], workload: str = "mixed"
) -> list[dict[str, str]]:
    """`n` tasks cycling through the workload's task types. Each has its own customer and
    travel date, so no task's writes change what another task reads, whatever order they
    run in."""
    rng = random.Random(f"{seed}|tasks")
    users = rng.sample(list(user_ids), n)
    days = rng.sample(range(60), n)  # July and August, with two days to spare
    kinds = list(WORKLOADS[workload])
    tasks = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        origin, destination = rng.sample(sorted(AIRPORTS), 2)
        params = {
            "origin": origin,
            "destination": destination,
            "city": AIRPORTS[destination],
            "date": f"2025-{7 + days[i] // 31:02d}-{days[i] % 31 + 1:02d}",
            "user_id": users[i],
        }
        tasks.append({"id": f"t{i + 1}-{kind}", "prompt": TEMPLATES[kind].format(**params)})
    return tasks


def _trip(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        route = {"origin": p["origin"], "destination": p["destination"], "date": p["date"]}
        return [("search_flights", route), ("get_weather", {"city": p["city"], "date": p["date"]})]
    if step == 1:
        cheapest = seen["search_flights"][-1]["flights"][0]
        return [("get_flight", {"flight_id": cheapest["flight_id"]})]
    f, w = seen["get_flight"][-1], seen["get_weather"][-1]
    return (
        f"The cheapest is {f['flight_id']}, departing {f['depart']} for "
        f"${f['price_usd']:.2f} ({f['fare']} fare: {f['fare_rules']}; {f['seats_left']} "
        f"seats left). {w['city']} on {w['date']}: {w['sky']}, {w['low_c']}-{w['high_c']} °C, "
        f"{w['precip_chance']}% chance of rain."
    )


def _cancel(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        who = {"user_id": p["user_id"]}
        return [("get_user", who), ("list_orders", who)]
    if step == 1:
        newest = seen["list_orders"][-1]["orders"][0]
        return [("get_order", {"order_id": newest["order_id"]})]
    order = seen["get_order"][0]
    if step == 2:
        if order["status"] != "processing":
            return (
                f"Order {order['order_id']} is already {order['status']}; it cannot be cancelled."
            )
        return [("cancel_order", {"order_id": order["order_id"], "reason": "customer request"})]
    user, done = seen["get_user"][-1], seen["cancel_order"][-1]
    if step == 3:
        email = {
            "to": user["email"],
            "subject": f"Order {done['order_id']} cancelled",
            "body": f"Hi {user['name'].split()[0]}, your order {done['order_id']} is cancelled "
            f"and ${done['refund_usd']:.2f} will be refunded to your card.",
        }
        return [("get_order", {"order_id": done["order_id"]}), ("send_email", email)]
    now, sent = seen["get_order"][-1], seen["send_email"][-1]
    return (
        f"Order {now['order_id']} is now {now['status']}; ${done['refund_usd']:.2f} will be "
        f"refunded. Confirmation {sent['message_id']} sent to {sent['to']}."
    )


def _book(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        route = {"origin": p["origin"], "destination": p["destination"], "date": p["date"]}
        return [("search_flights", route), ("get_user", {"user_id": p["user_id"]})]
    if step == 1:
        cheapest = seen["search_flights"][-1]["flights"][0]
        return [("get_flight", {"flight_id": cheapest["flight_id"]})]
    flight, user = seen["get_flight"][-1], seen["get_user"][-1]
    if step == 2:
        if flight["seats_left"] < 1:
            return f"{flight['flight_id']} is sold out; nothing was booked."
        return [("book_flight", {"flight_id": flight["flight_id"], "passenger": user["name"]})]
    booking = seen["book_flight"][-1]
    if step == 3:
        email = {
            "to": user["email"],
            "subject": f"Your booking {booking['booking_ref']}",
            "body": f"Hi {user['name'].split()[0]}, you are booked on {flight['flight_id']} "
            f"from {flight['origin']} to {flight['destination']} on {flight['date']}, "
            f"departing {flight['depart']}. Reference {booking['booking_ref']}, "
            f"${booking['price_usd']:.2f}.",
        }
        return [("send_email", email)]
    return (
        f"Booked {booking['passenger']} on {booking['flight_id']} (reference "
        f"{booking['booking_ref']}, ${booking['price_usd']:.2f}) and emailed {user['email']}."
    )


def _research(p: dict[str, str], step: int, seen: Seen) -> Turn:
    first = datetime.date.fromisoformat(p["date"])
    dates = [(first + datetime.timedelta(days=k)).isoformat() for k in range(3)]
    if step == 0:
        return [
            ("search_flights", {"origin": p["origin"], "destination": p["destination"], "date": d})
            for d in dates
        ]
    if step == 1:
        cheapest = [r["flights"][0]["flight_id"] for r in seen["search_flights"][-3:]]
        return [("get_flight", {"flight_id": f}) for f in cheapest]
    if step == 2:
        return [("get_weather", {"city": p["city"], "date": d}) for d in dates]
    days = zip(seen["get_flight"][-3:], seen["get_weather"][-3:], strict=True)
    return (
        "; ".join(
            f"{w['date']}: {f['flight_id']} ${f['price_usd']:.2f}, {w['sky']}" for f, w in days
        )
        + "."
    )


def _status(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        return [("list_orders", {"user_id": p["user_id"]})]
    if step == 1:
        latest = seen["list_orders"][-1]["orders"][:2]
        return [("get_order", {"order_id": o["order_id"]}) for o in latest]
    lines = [
        f"{o['order_id']} (placed {o['placed']}): {o['status']}"
        + (f", tracking {o['shipping']['tracking']}" if o["shipping"]["tracking"] else "")
        for o in seen["get_order"][-2:]
    ]
    return "; ".join(lines) + "."


TRAVEL = TemplateScript(
    templates=TEMPLATES,
    scripts={
        "trip": _trip,
        "cancel": _cancel,
        "book": _book,
        "status": _status,
        "research": _research,
    },
    gave_up=GAVE_UP,
    unknown="I can help with flights, weather and customer orders.",
)


class ScriptedLLM(scripted_llm.ScriptedLLM):
    """The demo's model: the travel and support tasks, over any of the three APIs."""

    def __init__(self, seed: int, think_s: tuple[float, float] = (1.0, 1.5)) -> None:
        super().__init__(TRAVEL, seed, think_s)
