"""The demo's tool servers over one deterministic in-memory world: a travel MCP server
(FastMCP over streamable HTTP, served by uvicorn) and a customer-support REST API (aiohttp).

Every answer is a function of the seed and of the writes made so far, so two runs of one
workload see the same results. Each tool waits a fixed, realistic latency, and every call
served is counted, so the demo can show what actually reached the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn
from aiohttp import web
from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

# Seconds each tool takes: fixed per tool, so both runs of the demo wait the same. Reads
# of slow backends (a fare search, an order system) take about as long as an LLM turn.
LATENCY_S: dict[str, float] = {
    "search_flights": 2.0,
    "get_flight": 1.3,
    "get_weather": 1.1,
    "book_flight": 1.2,
    "get_user": 0.7,
    "list_orders": 1.5,
    "get_order": 1.2,
    "cancel_order": 0.9,
    "send_email": 0.4,
}
READ_TOOLS = ("search_flights", "get_flight", "get_weather", "get_user", "list_orders", "get_order")
WRITE_TOOLS = ("book_flight", "cancel_order", "send_email")
# What each write changes, as the tools whose cached results it makes stale.
INVALIDATES: dict[str, tuple[str, ...]] = {
    "book_flight": ("get_flight", "search_flights"),
    "cancel_order": ("get_order", "list_orders"),
    "send_email": (),
}

AIRPORTS: dict[str, str] = {
    "LHR": "London",
    "CDG": "Paris",
    "JFK": "New York",
    "SFO": "San Francisco",
    "NRT": "Tokyo",
    "FCO": "Rome",
    "BCN": "Barcelona",
    "AMS": "Amsterdam",
    "SYD": "Sydney",
    "YYZ": "Toronto",
    "SIN": "Singapore",
    "DXB": "Dubai",
}
_CARRIERS = ("BA", "AF", "LH", "KL", "UA", "DL", "NH", "QF", "EK", "SQ", "IB", "AC")
_AIRCRAFT = ("A320neo", "A350-900", "B737-800", "B787-9", "A321XLR", "B777-300ER")
_FARES = (
    ("Basic", "no changes, carry-on only"),
    ("Standard", "changes for a fee, 1 checked bag"),
    ("Flex", "free changes, 2 checked bags"),
)
_FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas")
_LAST = ("Moreau", "Okafor", "Silva", "Tanaka", "Novak", "Larsen", "Haddad", "Rossi", "Kim")
_PRODUCTS = (
    ("Noise-cancelling headphones", 249.0),
    ("Carry-on suitcase", 189.0),
    ("Travel adapter", 24.5),
    ("Merino base layer", 79.0),
    ("Packing cubes (set of 4)", 34.0),
    ("Neck pillow", 29.0),
    ("E-reader", 139.0),
)
_SKIES = (  # and whether it is wet
    ("sunny", False),
    ("partly cloudy", False),
    ("overcast", False),
    ("light rain", True),
    ("thunderstorms", True),
    ("windy", False),
)
_USERS = 60
_ORDERS_PER_USER = 3
_TODAY = datetime.date(2025, 6, 28)  # the world's "today": orders are placed before it


class ToolFailure(Exception):
    """A call the tool refuses; `status` is what the REST API answers with."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


def _digest(*parts: object) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).hexdigest()


class World:
    """Users, orders, flights and weather, all derived from `seed`; writes change it."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.users: dict[str, dict[str, Any]] = {}
        self._orders: dict[str, dict[str, Any]] = {}
        self._orders_of: dict[str, list[str]] = {}
        for i in range(_USERS):
            self._add_user(f"U{1001 + i}")
        self.calls: Counter[str] = Counter()
        self._cancelled: dict[str, str] = {}  # order id -> reason
        self._booked: Counter[str] = Counter()  # flight id -> seats sold by book_flight
        self._flights: dict[str, dict[str, Any]] = {}  # flights a search has returned, by id
        self._tools: dict[str, Callable[..., dict[str, Any]]] = {
            "search_flights": self.search_flights,
            "get_flight": self.get_flight,
            "get_weather": self.get_weather,
            "book_flight": self.book_flight,
            "get_user": self.get_user,
            "list_orders": self.list_orders,
            "get_order": self.get_order,
            "cancel_order": self.cancel_order,
            "send_email": self.send_email,
        }

    def _rng(self, *parts: object) -> random.Random:
        return random.Random("|".join(map(str, (self.seed, *parts))))

    def _add_user(self, user_id: str) -> None:
        rng = self._rng("user", user_id)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        self.users[user_id] = {
            "user_id": user_id,
            "name": f"{first} {last}",
            "email": f"{first}.{last}.{user_id[1:]}@example.com".lower(),
            "tier": rng.choice(("basic", "silver", "gold")),
            "home_airport": rng.choice(sorted(AIRPORTS)),
        }
        ages = sorted(rng.sample(range(1, 90), _ORDERS_PER_USER))
        ids: list[str] = []
        for k, days_ago in enumerate(ages):
            order_id = f"ORD-{user_id[1:]}{k}{rng.randrange(10, 100)}"
            items: list[dict[str, Any]] = [
                {"name": name, "qty": rng.randint(1, 2), "unit_usd": price}
                for name, price in rng.sample(_PRODUCTS, rng.randint(1, 3))
            ]
            # The newest order has not shipped yet, so it can still be cancelled.
            status = "processing" if k == 0 else rng.choice(("shipped", "delivered"))
            self._orders[order_id] = {
                "order_id": order_id,
                "user_id": user_id,
                "placed": (_TODAY - datetime.timedelta(days=days_ago)).isoformat(),
                "status": status,
                "items": items,
                "total_usd": round(sum(i["qty"] * i["unit_usd"] for i in items), 2),
                "shipping": {
                    "method": rng.choice(("standard", "express")),
                    "tracking": None if status == "processing" else f"1Z{_digest(order_id)[:10]}",
                },
            }
            ids.append(order_id)
        self._orders_of[user_id] = ids

    def reset(self) -> Counter[str]:
        """Undo every write; returns the calls served since the last reset, per tool."""
        served, self.calls = self.calls, Counter()
        self._cancelled.clear()
        self._booked.clear()
        self._flights.clear()
        return served

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Serve one call the way a real backend would: count it, take the tool's time."""
        self.calls[tool] += 1
        await asyncio.sleep(LATENCY_S[tool])
        return self._tools[tool](**arguments)

    # -- travel (MCP) --------------------------------------------------------------------

    def search_flights(self, origin: str, destination: str, date: str) -> dict[str, Any]:
        origin, destination = origin.upper(), destination.upper()
        for code in (origin, destination):
            if code not in AIRPORTS:
                raise ToolFailure(f"unknown airport {code!r}; use an IATA code", 400)
        _parse_date(date)
        rng = self._rng("flights", origin, destination, date)
        found: list[dict[str, Any]] = []
        for carrier in rng.sample(_CARRIERS, 4):
            fare, baggage = rng.choice(_FARES)
            flight: dict[str, Any] = {
                "flight_id": f"{carrier}{rng.randrange(100, 2000)}-{date[5:7]}{date[8:]}",
                "carrier": carrier,
                "origin": origin,
                "destination": destination,
                "date": date,
                "depart": f"{rng.randrange(6, 23):02d}:{rng.choice((0, 15, 30, 45)):02d}",
                "duration_min": rng.randrange(70, 900, 5),
                "stops": rng.choice((0, 0, 1)),
                "price_usd": round(rng.uniform(120, 1400), 2),
                "aircraft": rng.choice(_AIRCRAFT),
                "fare": fare,
                "fare_rules": baggage,
                "seats": rng.randrange(2, 40),
            }
            self._flights[flight["flight_id"]] = flight
            found.append(flight)
        found.sort(key=lambda f: f["price_usd"])
        keys = ("flight_id", "carrier", "depart", "duration_min", "stops", "price_usd")
        return {
            "origin": origin,
            "destination": destination,
            "date": date,
            "flights": [{k: f[k] for k in keys} for f in found],
        }

    def get_flight(self, flight_id: str) -> dict[str, Any]:
        flight = self._flight(flight_id)
        details = {k: v for k, v in flight.items() if k != "seats"}
        return {**details, "seats_left": flight["seats"] - self._booked[flight_id]}

    def get_weather(self, city: str, date: str) -> dict[str, Any]:
        _parse_date(date)
        rng = self._rng("weather", city.lower(), date)
        sky, wet = rng.choice(_SKIES)
        high = rng.randrange(8, 36)
        return {
            "city": city,
            "date": date,
            "sky": sky,
            "high_c": high,
            "low_c": high - rng.randrange(4, 12),
            "precip_chance": rng.randrange(55, 96, 5) if wet else rng.randrange(0, 35, 5),
        }

    def book_flight(self, flight_id: str, passenger: str) -> dict[str, Any]:
        flight = self._flight(flight_id)
        if self._booked[flight_id] >= flight["seats"]:
            raise ToolFailure(f"flight {flight_id} is sold out", 409)
        self._booked[flight_id] += 1
        return {
            "booking_ref": "BK" + _digest(self.seed, flight_id, passenger)[:6].upper(),
            "flight_id": flight_id,
            "passenger": passenger,
            "status": "confirmed",
            "price_usd": flight["price_usd"],
        }

    def _flight(self, flight_id: str) -> dict[str, Any]:
        try:
            return self._flights[flight_id]
        except KeyError:
            raise ToolFailure(f"no flight {flight_id!r}; search_flights lists valid ids") from None

    # -- support (REST) ------------------------------------------------------------------

    def get_user(self, user_id: str) -> dict[str, Any]:
        try:
            return self.users[user_id]
        except KeyError:
            raise ToolFailure(f"no customer {user_id!r}") from None

    def list_orders(self, user_id: str) -> dict[str, Any]:
        self.get_user(user_id)
        newest_first = sorted(
            (self.get_order(o) for o in self._orders_of[user_id]),
            key=lambda o: o["placed"],
            reverse=True,
        )
        keys = ("order_id", "placed", "status", "total_usd")
        return {"user_id": user_id, "orders": [{k: o[k] for k in keys} for o in newest_first]}

    def get_order(self, order_id: str) -> dict[str, Any]:
        try:
            order = self._orders[order_id]
        except KeyError:
            raise ToolFailure(f"no order {order_id!r}") from None
        if order_id in self._cancelled:
            return {**order, "status": "cancelled", "cancel_reason": self._cancelled[order_id]}
        return order

    def cancel_order(self, order_id: str, reason: str) -> dict[str, Any]:
        status = self.get_order(order_id)["status"]
        if status != "processing":
            raise ToolFailure(f"order {order_id} is {status}; only unshipped orders cancel", 409)
        self._cancelled[order_id] = reason
        return {
            "order_id": order_id,
            "status": "cancelled",
            "refund_usd": self._orders[order_id]["total_usd"],
        }

    def send_email(self, to: str, subject: str, body: str) -> dict[str, Any]:
        return {"message_id": "msg-" + _digest(to, subject, body), "to": to, "status": "queued"}


def _parse_date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ToolFailure(f"bad date {text!r}; use YYYY-MM-DD", 400) from None


# -- MCP server -------------------------------------------------------------------------

_READ = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)
_WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False)


def build_mcp(world: World) -> FastMCP:
    """The travel tools as a FastMCP server; failures become MCP tool errors."""
    server = FastMCP("travel", log_level="WARNING")

    @server.tool(annotations=_READ)
    async def search_flights(origin: str, destination: str, date: str) -> dict[str, Any]:
        """Flights from origin to destination (IATA codes) on date (YYYY-MM-DD),
        cheapest first."""
        args = {"origin": origin, "destination": destination, "date": date}
        return await world.call("search_flights", args)

    @server.tool(annotations=_READ)
    async def get_flight(flight_id: str) -> dict[str, Any]:
        """Details of one flight from search_flights: aircraft, fare rules, seats left."""
        return await world.call("get_flight", {"flight_id": flight_id})

    @server.tool(annotations=_READ)
    async def get_weather(city: str, date: str) -> dict[str, Any]:
        """Weather forecast for a city on a date (YYYY-MM-DD)."""
        return await world.call("get_weather", {"city": city, "date": date})

    @server.tool(annotations=_WRITE)
    async def book_flight(flight_id: str, passenger: str) -> dict[str, Any]:
        """Book one seat on a flight for a passenger (full name). Charges the fare."""
        return await world.call("book_flight", {"flight_id": flight_id, "passenger": passenger})

    return server


# -- REST server ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestTool:
    name: str
    method: str
    path: str  # `{name}` segments take the argument of that name
    description: str
    params: dict[str, str]  # argument -> description; all are required strings

    def catalog_entry(self) -> dict[str, Any]:
        """How the API describes the tool to agents (served at GET /tools)."""
        return {
            "name": self.name,
            "description": self.description,
            "method": self.method,
            "path": self.path,
            "parameters": {
                "type": "object",
                "properties": {
                    k: {"type": "string", "description": d} for k, d in self.params.items()
                },
                "required": list(self.params),
            },
        }


REST_TOOLS = (
    RestTool(
        "get_user",
        "GET",
        "/users/{user_id}",
        "A customer's profile: name, email, tier, home airport.",
        {"user_id": "customer id, e.g. U1001"},
    ),
    RestTool(
        "list_orders",
        "GET",
        "/users/{user_id}/orders",
        "A customer's orders, most recent first.",
        {"user_id": "customer id, e.g. U1001"},
    ),
    RestTool(
        "get_order",
        "GET",
        "/orders/{order_id}",
        "One order: items, status, shipping.",
        {"order_id": "order id, e.g. ORD-1001123"},
    ),
    RestTool(
        "cancel_order",
        "POST",
        "/orders/{order_id}/cancel",
        "Cancel an order that has not shipped yet, and refund it.",
        {"order_id": "order id", "reason": "why the customer cancels"},
    ),
    RestTool(
        "send_email",
        "POST",
        "/emails",
        "Send an email to a customer.",
        {"to": "email address", "subject": "subject line", "body": "plain-text body"},
    ),
)


def build_rest(world: World) -> web.Application:
    """The support tools as a JSON API: path and query (GET) or JSON body (POST) arguments."""
    app = web.Application()
    catalog = [t.catalog_entry() for t in REST_TOOLS]

    async def tools(_: web.Request) -> web.Response:
        return web.json_response(catalog)

    app.router.add_get("/tools", tools)
    for tool in REST_TOOLS:
        app.router.add_route(tool.method, tool.path, _rest_handler(world, tool))
    return app


def _rest_handler(world: World, tool: RestTool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        args: dict[str, Any] = dict(request.match_info)
        if tool.method == "GET":
            args.update(request.query)
        elif request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return web.json_response({"error": "body must be a JSON object"}, status=400)
            args.update(body)
        wrong = set(args) ^ set(tool.params)
        if wrong:
            expected = ", ".join(tool.params)
            return web.json_response(
                {"error": f"{tool.name} takes exactly: {expected}"}, status=400
            )
        try:
            return web.json_response(await world.call(tool.name, args))
        except ToolFailure as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)

    return handle


# -- serving on loopback ----------------------------------------------------------------


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Run an aiohttp app on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = _loopback_socket()
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


def _benign_close(record: logging.LogRecord) -> bool:
    """False for the error the MCP SDK logs when a client ends its session while its
    event stream is open: every agent does that on exit, and nothing is wrong."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, anyio.ClosedResourceError)


class _Server(uvicorn.Server):
    """uvicorn takes over SIGINT and SIGTERM while it serves; the demo keeps them, so
    Ctrl-C stops the whole demo (and its subprocesses), not just this server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serve_mcp(server: FastMCP) -> AsyncIterator[str]:
    """Serve a FastMCP app over streamable HTTP in this loop; yields the endpoint URL."""
    logging.getLogger("mcp.server.streamable_http").addFilter(_benign_close)
    sock = _loopback_socket()
    config = uvicorn.Config(
        server.streamable_http_app(),
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,  # an agent's open event stream must not hold up exit
    )
    uv = _Server(config)
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    try:
        while not uv.started:
            if task.done():
                await task  # raises why it could not start
                raise RuntimeError("the MCP server stopped while starting")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        uv.should_exit = True
        await task
