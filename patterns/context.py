"""What a client adds to the user's messages is not the user's words.

Agents put context of their own into user messages: Codex sends an
`<environment_context>` block (working directory, shell, date) and its AGENTS.md
instructions as user messages of their own; Claude Code puts `<system-reminder>`
blocks around the prompt. Left as user text, they crowd the prompt out of the
intent model (which reads a message's first words) and of the user-text
sources. They are recognised by their tags, or by being repeated verbatim in
other sessions while the user still has something to say in the same turn, and
kept as context texts: the values they carry remain sources (dataflow.py, "ctx").
"""

from __future__ import annotations

import re

# A tag that opens a line; its block ends with the matching close tag at the end of a line.
_OPEN = re.compile(r"^[ \t]*<([A-Za-z][\w.:-]{0,63})(?:[ \t][^<>\n]*)?>", re.MULTILINE)
MAX_BLOCKS = 32  # opening tags tried per text
REPEATED_IN = 2  # other sessions that sent a text verbatim, for it to count as context
MAX_TEXTS_SEEN = 4_096  # user texts remembered to find those repeated


def split_context(text: str) -> tuple[str, list[str]]:
    """(the text without its tagged blocks, the blocks in order)."""
    blocks: list[tuple[int, int]] = []
    pos = 0
    for _ in range(MAX_BLOCKS):
        match = _OPEN.search(text, pos)
        if match is None:
            break
        end = _block_end(text, match.end(), match.group(1))
        if end is None:
            pos = match.end()
            continue
        blocks.append((match.start(), end))
        pos = end
    if not blocks:
        return text, []
    rest, last = [], 0
    for start, end in blocks:
        rest.append(text[last:start])
        last = end
    rest.append(text[last:])
    user = "\n".join(part.strip("\n") for part in rest if part.strip())
    return user, [text[start:end].strip() for start, end in blocks]


def _block_end(text: str, pos: int, tag: str) -> int | None:
    """Where the block whose open tag ends at `pos` ends: after the first `</tag>` that
    closes a line; None without one."""
    close = f"</{tag}>"
    while (at := text.find(close, pos)) >= 0:
        end = at + len(close)
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end
        if not text[end:line_end].strip(" \t\r"):
            return line_end
        pos = end
    return None
