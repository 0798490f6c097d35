"""Canonical JSON: the one way arguments and results are compared and hashed."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical(value: Any) -> bytes:
    """Sorted-key compact JSON bytes; equal values give equal bytes."""
    return orjson.dumps(value, option=_OPTS)


def canonical_key(value: Any) -> bytes:
    """canonical(value) as a right-sized copy, for keys that are kept: orjson's own bytes
    hold its whole write buffer (1-4 KiB however short the JSON)."""
    return memoryview(orjson.dumps(value, option=_OPTS)).tobytes()


def digest(value: Any, size: int = 16) -> str:
    """Short hex digest of the canonical form of `value`."""
    return hashlib.blake2b(canonical(value), digest_size=size // 2).hexdigest()


def loads_or_none(text: str | bytes) -> Any:
    """Parse JSON, or return None when it is not valid JSON."""
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return None
