"""How replicas name what they share: results, conversations, replicas, the store itself."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from prefire.proxy.cache import CacheKey

REPLICA_FILE = "replica-id"


def result_key(key: CacheKey) -> str:
    """The shared name of a cache key. The key holds the scope, so two tenants' results
    never share a name."""
    # the tuple's repr: the names replicas of earlier versions gave the same calls
    ident = repr((key.scope, key.binding, key.tool, key.args)).encode()
    return hashlib.blake2b(ident, digest_size=16, person=b"prefire-result").hexdigest()


def replica_id(state_root: Path) -> str:
    """This replica's id, kept in its state dir so that after a restart it still knows
    which events in the shared stream are its own (its snapshot already has them)."""
    path = state_root / REPLICA_FILE
    with contextlib.suppress(OSError):
        text = path.read_text().strip()
        if text:
            return text
    rid = secrets.token_hex(6)
    with contextlib.suppress(OSError):
        path.write_text(rid + "\n")
    return rid


def localize(conversation: str, origin: str, me: str) -> str:
    """A conversation id from replica `origin`'s stream, as this replica names it. A
    replica names the conversations it started with bare ids and another replica's as
    "REPLICA~ID", so the id one replica publishes names the same conversation for all."""
    owner, sep, rest = conversation.partition("~")
    if not sep:
        return f"{origin}~{conversation}"
    return rest if owner == me else conversation


def redact(url: str) -> str:
    """The store URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def store_id(url: str | None, prefix: str) -> str:
    """Names a shared store (host, port, database, prefix; no credentials) so that a saved
    stream position is only reused against the same store."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path}#{prefix}"


def check_url(url: str | None) -> None:
    """Raise ValueError, saying what to write instead, for a `--store` it cannot use."""
    if not url or url == "embedded":
        return
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"--store {redact(url)!r}: use 'embedded' or a Redis URL "
            "(redis://[USER:PASS@]HOST:PORT/DB, rediss://... for TLS, unix:///path.sock)"
        )
