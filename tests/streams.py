"""Feeding stream decoders in pieces: outputs must not depend on where the network cuts."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from hypothesis import strategies as st

from prefire.wire.providers.base import CallDraft


class Decoder(Protocol):
    def feed(self, data: bytes) -> list[Any]: ...

    def close(self) -> list[Any]: ...


# Decodes a whole body, given as its chunks, with a fresh decoder.
Decode = Callable[[Iterable[bytes]], list[Any]]


def feed_all(decoder: Decoder, chunks: Iterable[bytes]) -> list[Any]:
    """All the decoder outputs for these chunks, those of close() included."""
    out: list[Any] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


def decoding(new_decoder: Callable[[], Decoder]) -> Decode:
    """A Decode that starts each body with `new_decoder()`."""
    return lambda chunks: feed_all(new_decoder(), chunks)


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def pieces(data: bytes, size: int) -> list[bytes]:
    """`data` in chunks of `size` bytes (the last may be shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at these offsets, in any order; repeated offsets give empty chunks."""
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def random_cuts(data: bytes) -> st.SearchStrategy[list[int]]:
    """Up to 12 random cut offsets into `data`, for `split_at` under hypothesis."""
    return st.lists(st.integers(min_value=0, max_value=len(data)), max_size=12)


def assert_split_invariant(data: bytes, decode: Decode) -> list[Any]:
    """Every two-chunk split (empty halves too) and a byte-by-byte feed decode as one chunk does.

    Returns the outputs of the one-chunk decode.
    """
    whole = decode([data])
    for i in range(len(data) + 1):
        assert decode([data[:i], data[i:]]) == whole, f"split at byte {i}"
    assert decode(byte_by_byte(data)) == whole
    return whole


def assert_cuts_invariant(data: bytes, decode: Decode, cuts: Iterable[int], size: int) -> list[Any]:
    """For bodies too big to split everywhere: these two-chunk cuts, and `size`-byte pieces.

    Returns the outputs of the one-chunk decode.
    """
    whole = decode([data])
    for cut in cuts:
        assert decode([data[:cut], data[cut:]]) == whole, f"split at byte {cut}"
    assert decode(pieces(data, size)) == whole
    return whole


def drafts(out: Iterable[Any]) -> list[CallDraft]:
    """The tool calls among decoder outputs."""
    return [o for o in out if isinstance(o, CallDraft)]
