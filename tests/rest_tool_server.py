"""A REST tool server in its own process, so a test can kill it (SIGKILL) mid-call.

    python -m tests.rest_tool_server PORT DELAY_S

GET /v1/weather?city=X answers {"city": X, "sky": "clear"} after DELAY_S. It prints
"ready" once listening and "call X" when a request arrives, one line each.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from aiohttp import web


async def main(port: int, delay_s: float) -> None:
    async def weather(request: web.Request) -> web.Response:
        city = request.query.get("city", "")
        print(f"call {city}", flush=True)
        await asyncio.sleep(delay_s)
        return web.json_response({"city": city, "sky": "clear"})

    app = web.Application()
    app.router.add_get("/v1/weather", weather)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    await web.SockSite(runner, sock).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
