"""Embeds mitmproxy in our own asyncio loop, with the prefire addon."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from mitmproxy import options
from mitmproxy.tools.dump import DumpMaster

from prefire.patterns.events import Event, RecordError, SessionKey, from_record
from prefire.proxy.accounting import Accounting
from prefire.proxy.addon import AddonConfig, ConnectToAddon, PrefireAddon
from prefire.proxy.bindings import NoTarget
from prefire.proxy.capture import Capture
from prefire.proxy.learner import Learner
from prefire.proxy.speculator import Speculator
from prefire.proxy.state import DEFAULT_MAX_BODY, StateDir, proxy_env, url_host
from prefire.proxy.store import LINK, RemoteBatch, localize, make_store, store_id
from prefire.proxy.toolresults import ToolSideResults
from prefire.proxy.transport import ConnectTo
from prefire.rules.files import RulesWatcher

log = structlog.get_logger(__name__)

# On SIGTERM, requests in flight get this long to finish before the proxy stops.
DRAIN_S = 5.0


@dataclass(slots=True)
class ProxyConfig:
    state: StateDir
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    mode: str = "regular"
    capture_dir: Path | None = None
    ssl_insecure: bool = False
    max_body: int = DEFAULT_MAX_BODY
    rules_path: Path | None = None
    speculate: bool = True
    proxy_auth: str | None = None
    # print the listening address and CA path on stdout when started (`prefire run` does)
    announce: bool = True
    # Where upstream connections really go, for the agent's traffic and for prefire's own
    # early calls; None: where the request says. Live playback sets them.
    connect_to: ConnectTo | None = None
    speculative_connect_to: ConnectTo | None = None
    # shared state for replicas: None (embedded) or a Redis URL; see proxy/store/
    store_url: str | None = None
    store_prefix: str = "prefire"
    store_wait_s: float = 5.0
    store_timeout_s: float = 0.1


class Proxy:
    """One embedded mitmproxy with prefire's addon. Must be built inside a running loop."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.rules = RulesWatcher(config.rules_path)  # first: a broken rules file stops here
        config.state.ensure()
        self.capture = Capture(config.capture_dir) if config.capture_dir else None
        self.ready: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        opts = options.Options(
            listen_host=config.listen_host,
            listen_port=config.listen_port,
            mode=[config.mode],
            confdir=str(config.state.confdir),
            ssl_insecure=config.ssl_insecure,
        )
        self.master = DumpMaster(opts, with_termlog=False, with_dumper=False)
        # Declared by an addon, so settable only once the addons are loaded.
        # Bodies above the limit are streamed through untouched and not observed.
        opts.update(stream_large_bodies=str(config.max_body))
        if config.proxy_auth:
            opts.update(proxyauth=config.proxy_auth)
        self.addon = PrefireAddon(
            AddonConfig(capture=self.capture, max_body=config.max_body, on_ready=self._on_ready)
        )
        self.master.addons.add(self.addon)
        if config.connect_to is not None:
            self.master.addons.add(ConnectToAddon(config.connect_to))
        shared_id = store_id(config.store_url, config.store_prefix)
        self.learner = Learner(config.state.root, store_id=shared_id)
        # raises ValueError for a --store it cannot use
        self.store = make_store(
            config.store_url,
            state_root=config.state.root,
            listener=self,
            prefix=config.store_prefix,
            wait_s=config.store_wait_s,
            timeout_s=config.store_timeout_s,
            start_after=self.learner.position,
        )
        self.learner.model.shared = lambda tool: self.rules.current.shares_learning(tool)
        self.accounting = Accounting()
        self.speculator = Speculator(
            self.learner.model,
            self.rules,
            self.addon.observer,
            self.accounting,
            enabled=config.speculate,
            verify_tls=not config.ssl_insecure,
            connect_to=config.speculative_connect_to,
            store=self.store,
        )
        self.tool_results = self._tool_side_results()
        # the model learns from an event before the speculator acts on it
        self.addon.listeners += [self.learner, self.speculator, self.tool_results]
        if self.store.shared:  # (the embedded store would drop them)
            self.addon.listeners.append(self.store.publish)
            self.addon.observer.sessions.on_link = self.store.publish_link
        self.addon.on_call_closed = self.speculator.eager
        self.addon.responder = self.speculator.responder
        self._draining: asyncio.Task[None] | None = None

    def _tool_side_results(self) -> ToolSideResults:
        """The tool's own result of a call joined to its conversation is learned there:
        MCP calls through the speculator's join, REST requests told by the addon (a call
        no MCP binding explains may run as one)."""
        bindings = self.speculator.bindings
        results = ToolSideResults(
            self.addon.observer,
            self.learner,
            rest_tool=lambda client, name: isinstance(bindings.resolve(client, name), NoTarget),
        )
        self.addon.tool_side = results
        self.speculator.on_join.append(results.joined)
        return results

    # -- what other replicas did (the store's listener, proxy/store/base.py) --------------

    def used_elsewhere(self, name: str) -> None:
        self.speculator.used_elsewhere(name)

    def invalidated_elsewhere(self, names: list[str]) -> None:
        self.speculator.invalidated_elsewhere(names)

    def fire_requested(self, request: dict[str, Any]) -> None:
        self.speculator.fire_requested(request)

    def remote_events(self, batch: RemoteBatch, position: str) -> None:
        """Records other replicas shared, up to `position` in the stream: conversation
        links go to the sessions, events to the model, named as this replica names them."""
        sessions, me = self.addon.observer.sessions, self.store.replica
        events: list[Event] = []
        for origin, record in batch:
            try:
                session = SessionKey.parse(str(record["session"]))
                session = SessionKey(session.scope, localize(session.conversation, origin, me))
                if record.get("kind") == LINK:
                    sessions.remote_link(str(record.get("link")), session, record.get("value"))
                    continue
                event = from_record(record)
            except (RecordError, KeyError, ValueError, TypeError):
                continue
            events.append(dataclasses.replace(event, session=session))
        self.learner.remote(events, position)

    def _on_ready(self, addrs: list[tuple[str, int]]) -> None:
        if not self.ready.done() and addrs:
            self.ready.set_result(addrs[0])

    @property
    def url(self) -> str:
        host, port = self.ready.result()
        return f"http://{url_host(host)}:{port}"

    def env(self) -> dict[str, str]:
        host, port = self.ready.result()
        return proxy_env(host, port, self.config.state)

    async def _watch_rules(self, every_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.rules.reload_if_changed()

    async def _write_stats_periodically(self, every_s: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.accounting.write(self.config.state.root)

    def shutdown(self) -> None:
        """Stop now: connections are closed, requests in flight are cut."""
        self.master.shutdown()

    def drain(self) -> None:
        """SIGTERM/SIGINT: stop accepting connections, let the requests in flight finish
        (for DRAIN_S at most), then stop. A second signal stops at once."""
        if self._draining is not None:
            self.shutdown()
            return
        self._draining = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        started = time.monotonic()
        self.addon.drain()
        try:
            servers = self.master.addons.get("proxyserver").servers
            await asyncio.wait_for(servers.update([]), DRAIN_S)
            left = DRAIN_S - (time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.addon.idle.wait(), max(0.0, left))
        except Exception as exc:  # never let a failed drain keep the process up
            log.warning("proxy.drain_failed", error=repr(exc))
        finally:
            log.info(
                "proxy.stopping",
                drained_s=round(time.monotonic() - started, 3),
                cut=len(self.addon.in_flight),
            )
            self.shutdown()

    async def run(self, until_ready: Callable[[], Awaitable[int | None]] | None = None) -> int:
        """Serve until shut down (SIGINT/SIGTERM), or until `until_ready()` returns after start-up.

        Returns `until_ready()`'s result as the exit status, or 0.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.drain)
        await self.store.start()
        serving = asyncio.create_task(self.master.run())
        background = [
            asyncio.create_task(self.learner.save_periodically()),
            asyncio.create_task(self._watch_rules()),
            asyncio.create_task(self._write_stats_periodically()),
        ]
        status = 0
        try:
            either: list[asyncio.Future[Any]] = [serving, self.ready]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not self.ready.done():
                await serving
                return 1
            host, port = self.ready.result()
            if self.config.announce:
                print(f"prefire listening on {self.url}", flush=True)
                print(f"CA certificate: {self.config.state.ca_cert}", flush=True)
            log.info("proxy.started", host=host, port=port, mode=self.config.mode, pid=os.getpid())
            if until_ready is not None:
                result = await until_ready()
                status = result or 0
                self.shutdown()
            await serving
        finally:
            for task in background:
                task.cancel()
            await self.speculator.close()
            await self.store.close()
            if self.capture is not None:
                self.capture.close()
            self.learner.save()
            self.accounting.write(self.config.state.root)
            report = self.accounting.report()
            for tool, counters in report["tools"].items():
                log.info("speculate.tool", tool=tool, **counters)
            log.info("speculate.totals", **report["totals"])
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            sys.stdout.flush()
        return status


def start_under_test(
    root: Path,
    *,
    ca: Path,
    warm: bytes | None,
    rules_path: Path | None,
    speculate: bool,
    connect_to: ConnectTo,
    speculative_connect_to: ConnectTo,
) -> Proxy:
    """A proxy for one pass of `prefire replay --live` (replay.live.StartProxy): a fresh
    state dir in `root`, `warm` as its learned patterns, one CA kept in `ca` for every
    pass (it takes a moment to make), any free port, upstreams routed by the playback."""
    state = StateDir(root)
    state.root.mkdir(parents=True)
    if ca.exists():
        shutil.copytree(ca, state.confdir)
    if warm is not None:
        (state.root / "patterns.json").write_bytes(warm)
    proxy = Proxy(
        ProxyConfig(
            state=state,
            listen_port=0,
            ssl_insecure=True,  # the playback servers' certificate is a throwaway one
            rules_path=rules_path,
            speculate=speculate,
            announce=False,
            connect_to=connect_to,
            speculative_connect_to=speculative_connect_to,
        )
    )
    if not ca.exists():
        shutil.copytree(state.confdir, ca)
    return proxy
