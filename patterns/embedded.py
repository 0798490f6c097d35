"""JSON that a tool result carries inside text.

Clients often show the model a tool's output wrapped: Codex sends
`Wall time: 1.0 seconds\\nOutput:\\n{"result": "{\\"hits\\": [...]}"}`, a
timing line, then JSON whose value is JSON in a string; shell tools print JSON
lines. The values inside are what later calls use, so they are indexed as
leaves under a JSON_STEP path step (see values.py), next to the text itself.

Bounded: only strings up to MAX_TEXT characters are read, at most MAX_TRIES
places in one string are tried, and the answer for the last strings seen is
cached (sources resolve the same result again and again).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from prefire.patterns.canonical import canonical, loads_or_none

MAX_TEXT = 64 * 1024
MAX_TRIES = 8
# A JSON object or array that starts a line (after indentation).
_START = re.compile(r"^[ \t]*[\[{]", re.MULTILINE)
_DECODER = json.JSONDecoder()


@functools.lru_cache(maxsize=256)
def embedded_json(text: str) -> Any:
    """The JSON object or array in `text`; a list of them when there are several
    (JSON lines); None when there is none.

    A candidate is a `{` or `[` that starts a line; text around it (a timing
    line, a trailing note) is ignored. Scalars and empty containers do not count.
    """
    if len(text) > MAX_TEXT:
        return None
    found: list[Any] = []
    pos = 0
    for _ in range(MAX_TRIES):
        match = _START.search(text, pos)
        if match is None:
            break
        start = match.end() - 1
        try:
            _, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            pos = match.end()
            continue
        # orjson reads it again so that numbers and strings come out as everywhere else
        value = loads_or_none(text[start:end])
        if isinstance(value, dict | list) and value and _writable(value):
            found.append(value)
        pos = end
    if not found:
        return None
    return found[0] if len(found) == 1 else found


def _writable(value: Any) -> bool:
    """Whether the value has a canonical form (orjson writes only 254 levels)."""
    try:
        canonical(value)
    except (TypeError, ValueError):
        return False
    return True
