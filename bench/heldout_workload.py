"""A held-out style workload: agent traces unlike BFCL and tau2, with the messiness of
real agents, in domains none of prefire's workloads cover.

    python bench/heldout_workload.py --domain library --out data/heldout_library.jsonl
    python bench/heldout_workload.py --domain clinic --out data/heldout_clinic.jsonl
    python bench/heldout_workload.py --domain fleet --out data/heldout_fleet.jsonl

Split: `library` is the tuning set (its misses may be read while developing);
`clinic` and `fleet` are the report set (only their summary figures are looked at,
to keep or drop a change); `grocery` was written after the mechanisms were frozen
and measured once, before and after. Each session is an OpenAI-messages JSONL line with
recorded timings and write labels, as the importers write them.

What makes these traces messy, as real agents are:
- scratch-pad tools: think(thought), todo_write(todos), note(text) with free text;
- re-reads: a record read again after a write, or again a few turns later;
- values in another form: relative dates ("next Thursday", "the day after tomorrow")
  against a date the system prompt states (or none), times ("3 pm"), counts in words
  ("the two closest"), names in another case ("maria garcia" -> "Maria Garcia"),
  plates and codes in another case;
- parallel calls (independent lookups together; per-item fan-outs over a list);
- abandoned branches: an empty search retried with other values, a detour to a
  record the agent then drops;
- follow-up user turns in the same conversation.
Not a test: it writes traces. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIRST = ["maria", "james", "aiko", "omar", "lena", "tobias", "priya", "diego", "hana", "samuel"]
LAST = ["garcia", "okafor", "lindqvist", "nakamura", "haddad", "moreau", "kowalski", "reyes"]
CITIES = ["Tucson", "Albany", "Spokane", "Eugene", "Fresno", "Boise", "Duluth", "Macon"]
NUMWORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _tool(name: str, desc: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    params = {"type": "object", "properties": props, "required": required}
    return {
        "type": "function",
        "function": {"name": name, "description": desc, "parameters": params},
    }


def _s(desc: str, **kw: Any) -> dict[str, Any]:
    return {"type": "string", "description": desc, **kw}


def _i(desc: str) -> dict[str, Any]:
    return {"type": "integer", "description": desc}


SCRATCH = [
    _tool(
        "think",
        "Think out loud; no effect on the world.",
        {"thought": _s("Your reasoning")},
        ["thought"],
    ),
    _tool(
        "todo_write",
        "Write the task list (replaces the previous one).",
        {"todos": {"type": "array", "items": {"type": "object"}, "description": "The list"}},
        ["todos"],
    ),
]


class Trace:
    """One session being written: messages, per-call and per-turn timings."""

    def __init__(self, sid: str, system: str, rnd: random.Random) -> None:
        self.sid, self.rnd = sid, rnd
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        self.llm_s: list[float] = []
        self.tool_s: dict[str, float] = {}
        self.todos: list[dict[str, str]] = []
        self._n = 0

    def user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def turn(self, calls: list[tuple[str, dict[str, Any], Any]]) -> list[Any]:
        """One assistant message with these (parallel) calls, then their results."""
        self.llm_s.append(round(self.rnd.uniform(1.0, 4.0), 3))
        ids = []
        for _ in calls:
            self._n += 1
            ids.append(f"call_{self.sid}_{self._n}")
        self.messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": cid,
                        "type": "function",
                        "function": {"name": n, "arguments": json.dumps(a)},
                    }
                    for cid, (n, a, _) in zip(ids, calls, strict=True)
                ],
            }
        )
        for cid, (_, _, result) in zip(ids, calls, strict=True):
            self.tool_s[cid] = round(self.rnd.uniform(0.3, 2.5), 3)
            self.messages.append(
                {"role": "tool", "tool_call_id": cid, "content": json.dumps(result)}
            )
        return [r for _, _, r in calls]

    def say(self, text: str) -> None:
        self.llm_s.append(round(self.rnd.uniform(1.0, 3.0), 3))
        self.messages.append({"role": "assistant", "content": text})

    def scratch(self, p: float, thought: str) -> None:
        """Maybe a scratch-pad call: a thought, or the todo list with the next item done."""
        if self.rnd.random() >= p:
            return
        if self.rnd.random() < 0.5:
            self.turn([("think", {"thought": thought}, {"ok": True})])
            return
        if not self.todos:
            self.todos = [{"content": t, "status": "pending"} for t in thought.split("; ")]
        else:
            nxt = next((t for t in self.todos if t["status"] == "pending"), None)
            if nxt is not None:
                nxt["status"] = "completed"
        self.turn([("todo_write", {"todos": [dict(t) for t in self.todos]}, {"ok": True})])


def _day(ref: dt.date, rnd: random.Random) -> tuple[str, dt.date]:
    """A day the user names relative to `ref`, in words, and the day it is."""
    kind = rnd.choice(["tomorrow", "after", "next", "on", "written", "weeks"])
    if kind == "tomorrow":
        return "tomorrow", ref + dt.timedelta(days=1)
    if kind == "after":
        return "the day after tomorrow", ref + dt.timedelta(days=2)
    if kind == "weeks":
        n = rnd.choice([1, 2, 3])
        return f"in {NUMWORDS[n]} week{'s' * (n > 1)}", ref + dt.timedelta(days=7 * n)
    wd = rnd.randrange(7)
    ahead = (wd - ref.weekday()) % 7 or 7
    if kind == "next":
        return f"next {WEEKDAYS[wd]}", ref + dt.timedelta(days=ahead)
    if kind == "on":
        return f"on {WEEKDAYS[wd].lower()}", ref + dt.timedelta(days=ahead)
    day = ref + dt.timedelta(days=rnd.randrange(3, 40))
    return day.strftime("%B ") + str(day.day), day


def _time(rnd: random.Random) -> tuple[str, str]:
    h = rnd.choice([8, 9, 10, 11, 13, 14, 15, 16])
    m = rnd.choice([0, 0, 30])
    shown = h if h <= 12 else h - 12
    ampm = "am" if h < 12 else "pm"
    words = (
        f"{shown}{':30' if m else ''} {ampm}"
        if rnd.random() < 0.6
        else f"{shown}{':30' if m else ''}{ampm.upper()}"
    )
    return words, f"{h:02d}:{m:02d}"


def _system(ref: dt.date, rnd: random.Random, role: str) -> str:
    form = rnd.random()
    if form < 0.45:
        stated = f"Today is {ref.strftime('%A, %B')} {ref.day}, {ref.year}."
    elif form < 0.85:
        stated = f"Current date: {ref.isoformat()}"
    else:
        stated = ""  # no date: the request's own time is all there is
    return f"You are {role}. Use the tools to look things up before answering. {stated}".strip()


def _person(rnd: random.Random) -> tuple[str, str]:
    first, last = rnd.choice(FIRST), rnd.choice(LAST)
    return f"{first} {last}", f"{first.title()} {last.title()}"


def _said(name_lower: str, rnd: random.Random) -> str:
    """How a user writes their own name: lower case, as is, or shouting."""
    return rnd.choice([name_lower, name_lower, name_lower.title(), name_lower.upper()])


def _id(rnd: random.Random, prefix: str, digits: int = 5) -> str:
    return f"{prefix}{rnd.randrange(10 ** (digits - 1), 10**digits)}"


# -- library (the tuning set) ---------------------------------------------------------

LIBRARY_TOOLS = [
    _tool(
        "find_patron",
        "Find a patron by e-mail.",
        {"email": _s("E-mail", format="email")},
        ["email"],
    ),
    _tool(
        "list_loans",
        "A patron's current loans.",
        {"patron_id": _s("Patron id, like PT-12345")},
        ["patron_id"],
    ),
    _tool("get_loan", "One loan's details.", {"loan_id": _s("Loan id")}, ["loan_id"]),
    _tool("renew_loan", "Renew a loan.", {"loan_id": _s("Loan id")}, ["loan_id"]),
    _tool(
        "search_catalog",
        "Search the catalog.",
        {
            "query": _s("Title, author or subject"),
            "format": _s("Format", enum=["print", "ebook", "audio"]),
            "limit": _i("How many results"),
        },
        ["query"],
    ),
    _tool("get_title", "A title's record.", {"title_id": _s("Title id")}, ["title_id"]),
    _tool(
        "check_availability",
        "Copies on the shelf at a branch.",
        {
            "title_id": _s("Title id"),
            "branch": _s("Branch", enum=["Central", "Eastside", "Harbor"]),
        },
        ["title_id", "branch"],
    ),
    _tool(
        "place_hold",
        "Place a hold.",
        {"title_id": _s("Title id"), "patron_id": _s("Patron id")},
        ["title_id", "patron_id"],
    ),
    _tool(
        "list_events",
        "Events at a branch on a day.",
        {
            "branch": _s("Branch"),
            "date": _s("Day, YYYY-MM-DD", format="date"),
            "audience": _s("Who for"),
        },
        ["branch", "date"],
    ),
    _tool("get_event", "An event's details.", {"event_id": _s("Event id")}, ["event_id"]),
    *SCRATCH,
]
LIBRARY_WRITES = ("renew_loan", "place_hold", "todo_write")
TITLES = [
    ("The Quiet Orchard", "Ines Duval"),
    ("Salt and Signal", "R. K. Obi"),
    ("A Map of Small Rivers", "Tove Hallin"),
    ("Night Ferry", "Carlos Ibarra"),
    ("Winter Arithmetic", "June Park"),
    ("The Glass Meridian", "Amara Eze"),
]


def library_session(t: Trace, ref: dt.date) -> None:
    kind = t.rnd.choice(["renew", "find", "events"])
    {"renew": _library_renew, "find": _library_find, "events": _library_events}[kind](t, ref)


def _library_renew(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    said, _ = _person(rnd)
    email = said.replace(" ", ".") + "@mail.example"
    when, day = _day(ref, rnd)
    t.user(
        f"hi, {_said(said, rnd)} here ({email}). "
        f"please renew whatever i have that is due before {when}"
    )
    t.scratch(0.4, "find patron; list loans; renew the ones due soon")
    pid = _id(rnd, "PT-")
    t.turn([("find_patron", {"email": email}, {"patron_id": pid, "name": said.title()})])
    loans = [
        {
            "loan_id": _id(rnd, "L", 6),
            "due": (ref + dt.timedelta(days=rnd.randrange(1, 30))).isoformat(),
        }
        for _ in range(rnd.randrange(1, 5))
    ]
    t.turn([("list_loans", {"patron_id": pid}, {"loans": loans})])
    t.scratch(0.3, "check each loan's due date")
    t.turn(
        [
            ("get_loan", {"loan_id": ln["loan_id"]}, {**ln, "title_id": _id(rnd, "T", 4)})
            for ln in loans
        ]
    )
    due = [ln for ln in loans if ln["due"] < day.isoformat()]
    if due:
        t.turn([("renew_loan", {"loan_id": ln["loan_id"]}, {"ok": True}) for ln in due])
        t.turn([("list_loans", {"patron_id": pid}, {"loans": loans})])  # re-read after the write
    t.say(f"Renewed {len(due)} loans.")


def _library_find(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    title, author = rnd.choice(TITLES)
    branch = rnd.choice(["Central", "Eastside", "Harbor"])
    fmt = rnd.choice(["print", "ebook", "audio"])
    n = rnd.choice([2, 3])
    t.user(
        f"Do you have {title.lower()} by {author}? I'd like the {fmt} at {branch.lower()}, and "
        f"{NUMWORDS[n]} similar books please."
    )
    tid = _id(rnd, "T", 4)
    t.turn(
        [
            (
                "search_catalog",
                {"query": title, "format": fmt},
                {"results": [{"title_id": tid, "title": title}]},
            )
        ]
    )
    t.turn(
        [
            (
                "get_title",
                {"title_id": tid},
                {"title_id": tid, "title": title, "author": author, "subjects": ["fiction"]},
            )
        ]
    )
    copies = rnd.choice([0, 1, 2])
    t.turn([("check_availability", {"title_id": tid, "branch": branch}, {"copies": copies})])
    if copies == 0:  # a branch tried, then another, then a hold
        other = rnd.choice([b for b in ("Central", "Eastside", "Harbor") if b != branch])
        t.turn([("check_availability", {"title_id": tid, "branch": other}, {"copies": 0})])
    similar = [{"title_id": _id(rnd, "T", 4)} for _ in range(n + 2)]
    t.turn([("search_catalog", {"query": author, "limit": n}, {"results": similar[:n]})])
    t.turn(
        [
            ("get_title", {"title_id": s["title_id"]}, {"title_id": s["title_id"]})
            for s in similar[:n]
        ]
    )
    t.say("Here is what I found.")


def _library_events(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    rnd.choice(TITLES)  # drawn for every catalog task, as the seed's sessions were
    branch = rnd.choice(["Central", "Eastside", "Harbor"])
    when, day = _day(ref, rnd)
    n = rnd.choice([2, 3])
    t.user(f"what's on at the {branch} branch {when}? show me the {NUMWORDS[n]} best for kids")
    events = [{"event_id": _id(rnd, "EV", 4)} for _ in range(rnd.randrange(n, n + 3))]
    t.turn(
        [
            (
                "list_events",
                {"branch": branch, "date": day.isoformat(), "audience": "kids"},
                {"events": events},
            )
        ]
    )
    t.turn(
        [
            ("get_event", {"event_id": e["event_id"]}, {**e, "title": "Story time"})
            for e in events[:n]
        ]
    )
    t.scratch(0.3, "pick the best ones")
    t.say("These look good.")


# -- clinic (report set) --------------------------------------------------------------

CLINIC_TOOLS = [
    _tool(
        "find_patient",
        "Find a patient by full name and date of birth.",
        {
            "full_name": _s("First and last name"),
            "dob": _s("Date of birth, YYYY-MM-DD", format="date"),
        },
        ["full_name", "dob"],
    ),
    _tool("get_patient", "A patient's record.", {"patient_id": _s("Patient id")}, ["patient_id"]),
    _tool(
        "list_appointments",
        "A patient's appointments.",
        {"patient_id": _s("Patient id"), "status": _s("Which", enum=["upcoming", "past", "all"])},
        ["patient_id"],
    ),
    _tool(
        "get_appointment",
        "One appointment.",
        {"appointment_id": _s("Appointment id")},
        ["appointment_id"],
    ),
    _tool(
        "search_slots",
        "Free slots of a clinician on a day.",
        {
            "clinician_id": _s("Clinician id"),
            "day": _s("YYYY-MM-DD", format="date"),
            "not_before": _s("Earliest time, HH:MM"),
        },
        ["clinician_id", "day"],
    ),
    _tool(
        "reschedule_appointment",
        "Move an appointment to a slot.",
        {"appointment_id": _s("Appointment id"), "slot_id": _s("Slot id")},
        ["appointment_id", "slot_id"],
    ),
    _tool(
        "search_clinicians",
        "Clinicians by specialty near a ZIP code.",
        {"specialty": _s("Specialty"), "zip": _s("ZIP code"), "max_results": _i("How many")},
        ["specialty", "zip"],
    ),
    _tool(
        "get_clinician",
        "A clinician's profile.",
        {"clinician_id": _s("Clinician id")},
        ["clinician_id"],
    ),
    _tool(
        "check_coverage",
        "Whether an insurance plan covers a clinician.",
        {"plan_code": _s("Plan code"), "clinician_id": _s("Clinician id")},
        ["plan_code", "clinician_id"],
    ),
    _tool(
        "list_lab_orders",
        "Lab orders since a day.",
        {"patient_id": _s("Patient id"), "since": _s("YYYY-MM-DD", format="date")},
        ["patient_id", "since"],
    ),
    _tool(
        "get_lab_result", "A lab order's result.", {"order_id": _s("Lab order id")}, ["order_id"]
    ),
    *SCRATCH,
]
CLINIC_WRITES = ("reschedule_appointment", "todo_write")
SPECIALTIES = ["dermatology", "cardiology", "physical therapy", "pediatrics", "orthopedics"]


def clinic_session(t: Trace, ref: dt.date) -> None:
    kind = t.rnd.choice(["move", "labs", "find"])
    {"move": _clinic_move, "labs": _clinic_labs, "find": _clinic_find}[kind](t, ref)


def _clinic_move(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    said, name = _person(rnd)
    dob = dt.date(rnd.randrange(1950, 2004), rnd.randrange(1, 13), rnd.randrange(1, 28))
    when, day = _day(ref, rnd)
    words, hhmm = _time(rnd)
    doc = rnd.choice(LAST)
    t.user(
        f"this is {_said(said, rnd)}, born {dob.strftime('%B')} {dob.day}, {dob.year}. "
        "i need to move my "
        f"appointment with dr {doc} to {when}, after {words} if possible"
    )
    t.scratch(0.5, "identify patient; find the appointment; find a slot; move it")
    pid = _id(rnd, "P-")
    t.turn([("find_patient", {"full_name": name, "dob": dob.isoformat()}, {"patient_id": pid})])
    appts = [
        {"appointment_id": _id(rnd, "A", 6), "clinician_id": _id(rnd, "C", 3)}
        for _ in range(rnd.randrange(1, 4))
    ]
    listed = {"appointments": appts}
    t.turn([("list_appointments", {"patient_id": pid, "status": "upcoming"}, listed)])
    seen = {"clinician": f"Dr. {doc.title()}"}
    t.turn(
        [("get_appointment", {"appointment_id": a["appointment_id"]}, {**a, **seen}) for a in appts]
    )
    appt = appts[0]
    slot = _find_slot(t, appt["clinician_id"], day, hhmm)
    t.scratch(0.3, "confirm with the user")
    moved = {"appointment_id": appt["appointment_id"], "slot_id": slot["slot_id"]}
    t.turn([("reschedule_appointment", moved, {"ok": True})])
    again = {"appointment_id": appt["appointment_id"]}
    t.turn([("get_appointment", again, {**appt, "slot": slot})])  # re-read after the write
    t.say("Done, your appointment is moved.")


def _find_slot(t: Trace, clinician: str, day: dt.date, hhmm: str) -> dict[str, str]:
    """A slot on the day asked for, or (an abandoned branch) on the next day."""
    rnd = t.rnd
    slots = [] if rnd.random() < 0.35 else [{"slot_id": _id(rnd, "S", 5), "time": hhmm}]
    ask = {"clinician_id": clinician, "day": day.isoformat(), "not_before": hhmm}
    t.turn([("search_slots", ask, {"slots": slots})])
    if not slots:  # nothing that day: the next day, same time
        nxt = day + dt.timedelta(days=1)
        slots = [{"slot_id": _id(rnd, "S", 5), "time": hhmm}]
        ask = {"clinician_id": clinician, "day": nxt.isoformat(), "not_before": hhmm}
        t.turn([("search_slots", ask, {"slots": slots})])
    return slots[0]


def _clinic_labs(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    pid = _id(rnd, "P-")
    when = rnd.choice([("last week", 7), ("two weeks ago", 14), ("since the 1st", 0)])
    since = ref - dt.timedelta(days=when[1]) if when[1] else ref.replace(day=1)
    t.user(
        "Are my lab results in yet? My patient number is "
        f"{pid.lower() if rnd.random() < 0.4 else pid}, "
        f"the tests were {when[0]}."
    )
    t.turn(
        [
            (
                "get_patient",
                {"patient_id": pid},
                {"patient_id": pid, "plan_code": _id(rnd, "PL", 3)},
            )
        ]
    )
    orders = [{"order_id": _id(rnd, "LO", 5)} for _ in range(rnd.randrange(1, 4))]
    t.turn(
        [
            (
                "list_lab_orders",
                {"patient_id": pid, "since": since.isoformat()},
                {"orders": orders},
            )
        ]
    )
    t.turn(
        [("get_lab_result", {"order_id": o["order_id"]}, {**o, "status": "final"}) for o in orders]
    )
    t.scratch(0.4, "summarize results")
    if rnd.random() < 0.5:  # the user asks again about the first; the agent re-reads it
        t.user("can you double check the first one?")
        t.turn(
            [
                (
                    "get_lab_result",
                    {"order_id": orders[0]["order_id"]},
                    {**orders[0], "status": "final"},
                )
            ]
        )
    t.say("Your results are in.")


def _clinic_find(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    spec = rnd.choice(SPECIALTIES)
    zipc = str(rnd.randrange(10000, 99999))
    n = rnd.choice([2, 3])
    plan = _id(rnd, "PL", 3)
    t.user(
        f"I need someone for {spec} near {zipc}. My plan is {plan}. "
        f"Which are the {NUMWORDS[n]} closest?"
    )
    docs = [{"clinician_id": _id(rnd, "C", 3)} for _ in range(n + 2)]
    t.turn(
        [
            (
                "search_clinicians",
                {"specialty": spec, "zip": zipc, "max_results": n + 2},
                {"clinicians": docs},
            )
        ]
    )
    t.turn(
        [("get_clinician", {"clinician_id": d["clinician_id"]}, d) for d in docs[:n]]
        + [
            (
                "check_coverage",
                {"plan_code": plan, "clinician_id": d["clinician_id"]},
                {"covered": True},
            )
            for d in docs[:n]
        ]
    )
    if rnd.random() < 0.5:
        when, day = _day(ref, rnd)
        t.user(f"can I see the first one {when}?")
        t.turn(
            [
                (
                    "search_slots",
                    {"clinician_id": docs[0]["clinician_id"], "day": day.isoformat()},
                    {"slots": []},
                )
            ]
        )
    t.say("Here are your options.")


# -- fleet (report set) ---------------------------------------------------------------

FLEET_TOOLS = [
    _tool(
        "get_vehicle",
        "A vehicle by plate or unit number.",
        {"plate": _s("Licence plate, upper case"), "unit": _i("Unit number")},
        [],
    ),
    _tool(
        "search_shops",
        "Service shops in a city offering a service.",
        {
            "city": _s("City"),
            "service": _s("Service", enum=["oil_change", "tires", "brakes", "inspection"]),
        },
        ["city", "service"],
    ),
    _tool(
        "check_shop",
        "Whether a shop can take a vehicle at a time.",
        {"shop_id": _s("Shop id"), "date": _s("YYYY-MM-DD", format="date"), "time": _s("HH:MM")},
        ["shop_id", "date", "time"],
    ),
    _tool(
        "book_service",
        "Book a service.",
        {
            "shop_id": _s("Shop id"),
            "vehicle_id": _s("Vehicle id"),
            "date": _s("YYYY-MM-DD"),
            "time": _s("HH:MM"),
        },
        ["shop_id", "vehicle_id", "date", "time"],
    ),
    _tool("find_driver", "A driver by e-mail.", {"email": _s("E-mail")}, ["email"]),
    _tool(
        "list_trips",
        "A driver's trips since a day.",
        {"driver_id": _s("Driver id"), "since": _s("YYYY-MM-DD", format="date")},
        ["driver_id", "since"],
    ),
    _tool("get_trip", "One trip.", {"trip_id": _s("Trip id")}, ["trip_id"]),
    _tool(
        "get_fuel_log",
        "Fuel purchases of a vehicle since a day.",
        {"vehicle_id": _s("Vehicle id"), "since": _s("YYYY-MM-DD", format="date")},
        ["vehicle_id", "since"],
    ),
    _tool("note", "Append to the dispatcher's notes.", {"text": _s("Text")}, ["text"]),
    *SCRATCH,
]
FLEET_WRITES = ("book_service", "note", "todo_write")
SERVICES = {
    "an oil change": "oil_change",
    "new tires": "tires",
    "a brake job": "brakes",
    "its inspection": "inspection",
}


def _plate(rnd: random.Random) -> str:
    letters = "".join(rnd.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))
    return f"{letters}-{rnd.randrange(1000, 9999)}"


def fleet_session(t: Trace, ref: dt.date) -> None:
    kind = t.rnd.choice(["service", "trips", "fuel"])
    {"service": _fleet_service, "trips": _fleet_trips, "fuel": _fleet_fuel}[kind](t, ref)


def _fleet_service(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    plate, city = _plate(rnd), rnd.choice(CITIES)
    words, service = rnd.choice(list(SERVICES.items()))
    when, day = _day(ref, rnd)
    tw, hhmm = _time(rnd)
    t.user(
        f"truck {plate.lower()} needs {words}. "
        f"find a shop in {city.lower()} that can take it {when} at {tw}"
    )
    t.scratch(0.4, "look up the truck; find shops; check times; book")
    vid = _id(rnd, "V", 4)
    if rnd.random() < 0.5:  # the two lookups are independent: parallel
        t.turn(
            [
                ("get_vehicle", {"plate": plate}, {"vehicle_id": vid, "plate": plate}),
                ("search_shops", {"city": city, "service": service}, {"shops": []}),
            ]
        )
    else:
        t.turn([("get_vehicle", {"plate": plate}, {"vehicle_id": vid, "plate": plate})])
    shops = [
        {"shop_id": _id(rnd, "SH", 3), "rating": rnd.randrange(3, 6)}
        for _ in range(rnd.randrange(2, 5))
    ]
    t.turn([("search_shops", {"city": city, "service": service}, {"shops": shops})])
    free = [rnd.random() < 0.6 for _ in shops[:3]]
    at = {"date": day.isoformat(), "time": hhmm}
    t.turn(
        [
            ("check_shop", {"shop_id": s["shop_id"], **at}, {"free": f})
            for s, f in zip(shops[:3], free, strict=False)
        ]
    )
    pick = next((s for s, f in zip(shops, free, strict=False) if f), None)
    if pick is None:
        t.say("No shop is free then.")
        return
    t.turn([("note", {"text": f"booking {plate} at {pick['shop_id']}"}, {"ok": True})])
    when_at = {"date": day.isoformat(), "time": hhmm}
    booking = {"booking_id": _id(rnd, "B", 5)}
    t.turn([("book_service", {"shop_id": pick["shop_id"], "vehicle_id": vid, **when_at}, booking)])
    after = {"vehicle_id": vid, "plate": plate, "next_service": day.isoformat()}
    t.turn([("get_vehicle", {"plate": plate}, after)])  # re-read after the write
    t.say("Booked.")


def _fleet_trips(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    said, _ = _person(rnd)
    email = said.replace(" ", "_") + "@fleet.example"
    t.user(
        f"how far did {_said(said, rnd)} drive this week? "
        f"email is {email.upper() if rnd.random() < 0.2 else email}"
    )
    monday = ref - dt.timedelta(days=ref.weekday())
    did = _id(rnd, "D", 4)
    t.turn([("find_driver", {"email": email}, {"driver_id": did})])
    trips = [
        {"trip_id": _id(rnd, "TR", 5), "vehicle_id": _id(rnd, "V", 4)}
        for _ in range(rnd.randrange(1, 5))
    ]
    t.turn([("list_trips", {"driver_id": did, "since": monday.isoformat()}, {"trips": trips})])
    t.turn(
        [
            ("get_trip", {"trip_id": tr["trip_id"]}, {**tr, "miles": rnd.randrange(5, 400)})
            for tr in trips
        ]
    )
    t.scratch(0.5, "add up the miles")
    if rnd.random() < 0.5:
        t.user("and fuel for the vehicle of the first trip, same period?")
        t.turn(
            [
                (
                    "get_fuel_log",
                    {"vehicle_id": trips[0]["vehicle_id"], "since": monday.isoformat()},
                    {"fills": []},
                )
            ]
        )
    t.say("Here is the total.")


def _fleet_fuel(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    units = rnd.sample(range(2, 40), 2)
    n = rnd.choice([1, 2, 3])
    since = ref - dt.timedelta(days=7 * n)
    t.user(
        f"compare fuel use of unit {units[0]} and unit {units[1]} "
        f"over the last {NUMWORDS[n]} week{'s' * (n > 1)}"
    )
    vids = [_id(rnd, "V", 4) for _ in units]
    t.turn(
        [
            ("get_vehicle", {"unit": u}, {"vehicle_id": v, "unit": u})
            for u, v in zip(units, vids, strict=True)
        ]
    )
    t.scratch(0.4, "pull fuel logs for both")
    t.turn(
        [
            (
                "get_fuel_log",
                {"vehicle_id": v, "since": since.isoformat()},
                {"fills": [{"gallons": 20}]},
            )
            for v in vids
        ]
    )
    t.say("Unit comparison done.")


# -- grocery (final check: written after the mechanisms were frozen, measured once) ----

GROCERY_TOOLS = [
    _tool(
        "find_customer",
        "A customer by phone number.",
        {"phone": _s("Phone, digits only")},
        ["phone"],
    ),
    _tool(
        "list_orders",
        "A customer's orders placed since a day.",
        {"customer_id": _s("Customer id"), "since": _s("YYYY-MM-DD", format="date")},
        ["customer_id"],
    ),
    _tool("get_order", "One order with its lines.", {"order_id": _s("Order id")}, ["order_id"]),
    _tool(
        "search_products",
        "Search the catalogue.",
        {
            "query": _s("Words to search for"),
            "category": _s("Aisle", enum=["produce", "dairy", "bakery", "pantry", "frozen"]),
            "max_price": {"type": "number", "description": "Highest unit price"},
            "sort": _s("Order", enum=["relevance", "price_asc", "rating"]),
        },
        ["query"],
    ),
    _tool("get_product", "A product's details.", {"sku": _s("SKU")}, ["sku"]),
    _tool(
        "check_stock",
        "Units on the shelf at a store.",
        {"sku": _s("SKU"), "store": _s("Store", enum=["Elm Street", "Harbor View", "Old Town"])},
        ["sku", "store"],
    ),
    _tool("get_cart", "The customer's cart.", {"customer_id": _s("Customer id")}, ["customer_id"]),
    _tool(
        "add_to_cart",
        "Add units of a product.",
        {"customer_id": _s("Customer id"), "sku": _s("SKU"), "quantity": _i("Units")},
        ["customer_id", "sku", "quantity"],
    ),
    _tool(
        "delivery_slots",
        "Free delivery slots from a store on a day.",
        {"store": _s("Store"), "day": _s("YYYY-MM-DD", format="date")},
        ["store", "day"],
    ),
    *SCRATCH,
]
GROCERY_WRITES = ("add_to_cart", "todo_write")
FOODS = [
    ("oat milk", "dairy"),
    ("sourdough bread", "bakery"),
    ("frozen peas", "frozen"),
    ("basmati rice", "pantry"),
    ("green apples", "produce"),
    ("greek yogurt", "dairy"),
]
STORES = ["Elm Street", "Harbor View", "Old Town"]


def _customer(rnd: random.Random) -> tuple[str, str, str]:
    """A customer's phone (digits), as they write it, and their id."""
    phone = "".join(str(rnd.randrange(10)) for _ in range(10))
    said_phone = f"({phone[:3]}) {phone[3:6]}-{phone[6:]}" if rnd.random() < 0.5 else phone
    return phone, said_phone, _id(rnd, "CU", 5)


def grocery_session(t: Trace, ref: dt.date) -> None:
    kind = t.rnd.choice(["reorder", "shop", "deliver"])
    {"reorder": _grocery_reorder, "shop": _grocery_shop, "deliver": _grocery_deliver}[kind](t, ref)


def _grocery_reorder(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    phone, said_phone, cid = _customer(rnd)
    when, day = rnd.choice([("last week", 7), ("two weeks ago", 14), ("3 days ago", 3)])
    t.user(f"hey, phone {said_phone}. can you add what i ordered {when} to my cart again?")
    t.scratch(0.4, "find customer; find the order; add its lines")
    t.turn([("find_customer", {"phone": phone}, {"customer_id": cid})])
    since = (ref - dt.timedelta(days=day)).isoformat()
    orders = [{"order_id": _id(rnd, "O", 6)} for _ in range(rnd.randrange(1, 3))]
    t.turn([("list_orders", {"customer_id": cid, "since": since}, {"orders": orders})])
    lines = [{"sku": _id(rnd, "SKU", 5), "quantity": rnd.randrange(1, 4)} for _ in range(2)]
    t.turn([("get_order", {"order_id": o["order_id"]}, {**o, "lines": lines}) for o in orders])
    t.turn([("add_to_cart", {"customer_id": cid, **ln}, {"ok": True}) for ln in lines])
    t.turn([("get_cart", {"customer_id": cid}, {"lines": lines})])
    t.say("Added to your cart.")


def _grocery_shop(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    _customer(rnd)  # drawn for every grocery task, as the seed's sessions were
    food, aisle = rnd.choice(FOODS)
    store = rnd.choice(STORES)
    n = rnd.choice([2, 3])
    price = rnd.choice([3, 4, 5])
    t.user(
        f"find me the {NUMWORDS[n]} cheapest {food} under {NUMWORDS[price]} dollars "
        f"and check they're in stock at {store.lower()}"
    )
    found = [{"sku": _id(rnd, "SKU", 5), "price": price - 1} for _ in range(n + 1)]
    args = {"query": food, "category": aisle, "max_price": price, "sort": "price_asc"}
    t.turn([("search_products", args, {"products": found})])
    t.turn([("get_product", {"sku": p["sku"]}, p) for p in found[:n]])
    stock = [rnd.choice([0, 4]) for _ in found[:n]]
    t.turn(
        [
            ("check_stock", {"sku": p["sku"], "store": store}, {"units": u})
            for p, u in zip(found[:n], stock, strict=True)
        ]
    )
    if not any(stock):  # none there: the next store over
        other = rnd.choice([s for s in STORES if s != store])
        t.turn([("check_stock", {"sku": found[0]["sku"], "store": other}, {"units": 2})])
    t.scratch(0.3, "summarize prices and stock")
    t.say("Here they are.")


def _grocery_deliver(t: Trace, ref: dt.date) -> None:
    rnd = t.rnd
    phone, said_phone, cid = _customer(rnd)
    rnd.choice(FOODS)  # drawn for every grocery task
    store = rnd.choice(STORES)
    when, day = _day(ref, rnd)
    t.user(f"phone is {said_phone}. when can {store} deliver {when}? and what's in my cart")
    t.turn([("find_customer", {"phone": phone}, {"customer_id": cid})])
    t.turn(
        [
            ("delivery_slots", {"store": store, "day": day.isoformat()}, {"slots": ["10:00"]}),
            ("get_cart", {"customer_id": cid}, {"lines": []}),
        ]
    )
    t.say("Slots and cart above.")


DOMAINS: dict[
    str, tuple[list[dict[str, Any]], tuple[str, ...], str, Callable[[Trace, dt.date], None]]
] = {
    "library": (LIBRARY_TOOLS, LIBRARY_WRITES, "a public library's assistant", library_session),
    "clinic": (CLINIC_TOOLS, CLINIC_WRITES, "a clinic's front-desk assistant", clinic_session),
    "fleet": (FLEET_TOOLS, FLEET_WRITES, "a fleet dispatcher's assistant", fleet_session),
    "grocery": (GROCERY_TOOLS, GROCERY_WRITES, "a grocery store's assistant", grocery_session),
}


def sessions(domain: str, n: int, seed: int) -> list[dict[str, Any]]:
    tools, writes, role, play = DOMAINS[domain]
    rnd = random.Random(f"{seed}|{domain}")
    out = []
    for i in range(n):
        ref = dt.date(2026, 1, 1) + dt.timedelta(days=rnd.randrange(0, 330))
        t = Trace(f"{domain}_{i}", _system(ref, rnd, role), rnd)
        play(t, ref)
        out.append(
            {
                "id": t.sid,
                "tools": tools,
                "messages": t.messages,
                "timing": {"llm_s": t.llm_s, "tool_s": t.tool_s},
                "tool_labels": {w: "write" for w in writes},
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--domain", choices=sorted(DOMAINS), required=True)
    ap.add_argument("--sessions", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    with args.out.open("w") as fh:
        for s in sessions(args.domain, args.sessions, args.seed):
            fh.write(json.dumps(s) + "\n")


if __name__ == "__main__":
    main()
