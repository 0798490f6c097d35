"""Typed values in the user's words: dates, times, numbers, e-mail addresses.

A user writes "next Friday", "May 26", "8 AM", "four"; the tool wants
"2024-05-31", "08:00", 4. `extract` finds the values of each kind in a text, in
order of appearance, resolving relative dates against a reference day (a date
stated in the conversation, else the request's own time); `render` writes a
value in a named format, and `formats_of` finds the formats that write a value
as an observed argument, so the format is learned from examples (or taken from
the schema). Standard library only.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for m in names
}
_WEEKDAYS = {
    d: i
    for i, names in enumerate(
        [
            ("monday", "mon"),
            ("tuesday", "tue", "tues"),
            ("wednesday", "wed"),
            ("thursday", "thu", "thurs"),
            ("friday", "fri"),
            ("saturday", "sat"),
            ("sunday", "sun"),
        ]
    )
    for d in names
}
_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
NUMBER_WORDS: dict[str, int] = {w: i for i, w in enumerate(_UNITS)}
NUMBER_WORDS.update({w: 20 + 10 * i for i, w in enumerate(_TENS)})
NUMBER_WORDS.update({"dozen": 12, "both": 2})
for _i, _t in enumerate(_TENS):
    for _u in range(1, 10):
        NUMBER_WORDS[f"{_t}-{_UNITS[_u]}"] = 20 + 10 * _i + _u

_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAY_RE = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
# a word that may be a number; NUMBER_WORDS decides (one big alternation is slow)
_NUMWORD_RE = r"[A-Za-z]+(?:-[A-Za-z]+)?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s*(?:in\s+|of\s+)?(\d{4}))?"

_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_SLASH = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])")
_MONTH_DAY = re.compile(rf"\b({_MONTH_RE})\.?\s+(?:the\s+)?{_DAY}\b{_YEAR}", re.IGNORECASE)
_DAY_MONTH = re.compile(
    rf"\b{_DAY}\s+(?:day\s+)?(?:of\s+)?({_MONTH_RE})\b\.?{_YEAR}", re.IGNORECASE
)
_RELATIVE = re.compile(
    rf"\b(?:(the\s+day\s+after\s+tomorrow)|(the\s+day\s+before\s+yesterday)|(today|tonight)"
    rf"|(tomorrow)|(yesterday)|(?:(next|this|coming|last)\s+)?({_WEEKDAY_RE})\b"
    rf"|in\s+(\d+|{_NUMWORD_RE}|a)\s+(days?|weeks?)|(next|last)\s+week)\b",
    re.IGNORECASE,
)
# days counted back: "two weeks ago", "over the last 3 days", "this week" (its Monday)
_PAST = re.compile(
    rf"\b(?:(\d+|{_NUMWORD_RE}|a)\s+(days?|weeks?)\s+ago|(?:last|past)\s+(\d+|{_NUMWORD_RE})"
    rf"\s+(days?|weeks?)|(this\s+week))\b",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\b(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*([ap])\.?\s?m\b\.?|\b(\d{1,2}):(\d{2})(?::(\d{2}))?\b"
    r"|\b(noon|midday|midnight)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"(?<![\w.\-/:,])(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)(?![\w\-/:]|[.,]\d)"
    rf"|\b({_NUMWORD_RE})\b"
)
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_STATED = re.compile(
    r"\b(?:today(?:'s date)?\s+is|today\s*:|current\s+(?:date|time)(?:\s+is|\s*:)|"
    r"the\s+date\s+is|date\s*:|as\s+of)\s*(?:\w+day,?\s+)?",
    re.IGNORECASE,
)

KINDS = ("date", "time", "number", "email")
DATE_FORMATS = (
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%m-%d-%Y",
    "%Y%m%d",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
)
TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I %p")
# what a written date or time can look like: strptime only runs on strings that pass
_LOOKS = {
    "date": re.compile(
        r"\d{4}[-/]?\d\d[-/]?\d\d|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{4}"
        r"|[A-Za-z]{3,9} \d{1,2}, \d{4}|\d{1,2} [A-Za-z]{3,9} \d{4}"
    ),
    "time": re.compile(r"\d{1,2}:\d\d(?::\d\d)?(?: [AaPp][Mm])?|\d{1,2} [AaPp][Mm]"),
}


def _date_or_none(y: int, m: int, d: int) -> dt.date | None:
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def _in_year(m: int, d: int, year: str | None, ref: dt.date | None) -> dt.date | None:
    """A month and day: in the year written, else the first on or after the reference day."""
    if year:
        return _date_or_none(int(year), m, d)
    if ref is None:
        return None
    found = _date_or_none(ref.year, m, d)
    if found is not None and found < ref:
        found = _date_or_none(ref.year + 1, m, d)
    return found


def _count(word: str) -> int | None:
    w = word.lower()
    if w == "a":
        return 1
    if w.isdigit():
        return int(w)
    return NUMBER_WORDS.get(w)


def _relative(m: re.Match[str], ref: dt.date) -> dt.date | None:
    g = m.groups()
    if g[0]:
        return ref + dt.timedelta(days=2)
    if g[1]:
        return ref - dt.timedelta(days=2)
    if g[2]:
        return ref
    if g[3]:
        return ref + dt.timedelta(days=1)
    if g[4]:
        return ref - dt.timedelta(days=1)
    if g[6]:
        day = _WEEKDAYS[g[6].lower()]
        ahead = (day - ref.weekday()) % 7
        which = (g[5] or "").lower()
        if which == "last":
            return ref - dt.timedelta(days=(ref.weekday() - day) % 7 or 7)
        if which == "next" and ahead == 0:
            ahead = 7
        return ref + dt.timedelta(days=ahead)
    if g[7]:
        n = _count(g[7])
        if n is None:
            return None
        return ref + dt.timedelta(days=n * (7 if g[8].lower().startswith("week") else 1))
    if g[9]:
        return ref + dt.timedelta(days=7 if g[9].lower() == "next" else -7)
    return None


def _dates(text: str, ref: dt.date | None) -> list[tuple[int, dt.date]]:
    found: dict[int, tuple[int, dt.date]] = {}  # start -> (end, date); earlier patterns win

    def add(start: int, end: int, value: dt.date | None) -> None:
        if value is None or any(s <= start < e or start <= s < end for s, (e, _) in found.items()):
            return
        found[start] = (end, value)

    for m in _ISO.finditer(text):
        add(m.start(), m.end(), _date_or_none(int(m[1]), int(m[2]), int(m[3])))
    for m in _SLASH.finditer(text):
        a, b, y = int(m[1]), int(m[2]), int(m[3])
        add(m.start(), m.end(), _date_or_none(y, a, b) or _date_or_none(y, b, a))
    for m in _MONTH_DAY.finditer(text):
        add(m.start(), m.end(), _in_year(_MONTHS[m[1].lower()], int(m[2]), m[3], ref))
    for m in _DAY_MONTH.finditer(text):
        add(m.start(), m.end(), _in_year(_MONTHS[m[2].lower()], int(m[1]), m[3], ref))
    if ref is not None:
        for m in _RELATIVE.finditer(text):
            try:
                add(m.start(), m.end(), _relative(m, ref))
            except OverflowError:  # past the last day datetime knows
                continue
        for m in _PAST.finditer(text):
            add(m.start(), m.end(), _past(m, ref))
    return sorted((s, d) for s, (_, d) in found.items())


def _past(m: re.Match[str], ref: dt.date) -> dt.date | None:
    n_word, unit = (m[1], m[2]) if m[1] else (m[3], m[4])
    if m[5]:
        return ref - dt.timedelta(days=ref.weekday())
    n = _count(n_word)
    if n is None:
        return None
    try:
        return ref - dt.timedelta(days=n * (7 if unit.lower().startswith("week") else 1))
    except OverflowError:  # before the first day datetime knows
        return None


def _times(text: str) -> list[tuple[int, dt.time]]:
    out = []
    for m in _TIME.finditer(text):
        try:
            if m[8]:
                t = dt.time(0 if m[8].lower() == "midnight" else 12)
            elif m[4]:
                if int(m[1]) > 12:
                    continue
                h = int(m[1]) % 12 + (12 if m[4].lower() == "p" else 0)
                t = dt.time(h, int(m[2] or 0), int(m[3] or 0))
            else:
                t = dt.time(int(m[5]), int(m[6]), int(m[7] or 0))
        except ValueError:  # not a time of day: "8:75 am", "25:00"
            continue
        out.append((m.start(), t))
    return out


def _number_of(digits: str) -> int | float:
    digits = digits.replace(",", "")
    n = float(digits)
    return int(n) if n.is_integer() and "." not in digits else n


def _number_matches(text: str) -> list[tuple[re.Match[str], int | float]]:
    """Numbers in digits or words, with where they stand."""
    out: list[tuple[re.Match[str], int | float]] = []
    for m in _NUMBER.finditer(text):
        if m[1]:
            out.append((m, _number_of(m[1])))
        elif (n := NUMBER_WORDS.get(m[2].lower())) is not None:
            out.append((m, n))
    return out


def _numbers(text: str) -> list[tuple[int, int | float]]:
    return [(m.start(), n) for m, n in _number_matches(text)]


def extract(text: str, ref: dt.date | None) -> dict[str, tuple[Any, ...]]:
    """The typed values in `text`, per kind, in order of appearance."""
    return {kind: extract_kind(text, ref, kind) for kind in KINDS}


def extract_kind(text: str, ref: dt.date | None, kind: str) -> tuple[Any, ...]:
    """The values of one kind in `text`, in order of appearance: a source that reads
    one kind does not pay for finding the others."""
    return _extract_kind(text, ref if kind == "date" else None, kind)


@functools.lru_cache(maxsize=1024)
def _extract_kind(text: str, ref: dt.date | None, kind: str) -> tuple[Any, ...]:
    if kind == "date":
        return tuple(d for _, d in _dates(text, ref))
    if kind == "time":
        return tuple(t for _, t in _times(text))
    if kind == "number":
        return tuple(n for _, n in _numbers(text))
    return tuple(m.group() for m in _EMAIL.finditer(text))


def stated_date(text: str) -> dt.date | None:
    """A date the text states as today's ("Today is October 13th, 2024", "The current
    time is 2024-05-15 15:00:00 EST"), or None."""
    for m in _STATED.finditer(text):
        found = _dates(text[m.end() : m.end() + 40], None)
        if found and found[0][0] == 0:
            return found[0][1]
    return None


def render(kind: str, value: Any, fmt: str) -> Any:
    """`value` of `kind` written in format `fmt`; None when the format does not apply."""
    if kind in ("date", "time"):
        text = value.strftime(fmt)
        if fmt in ("%I:%M %p", "%I %p"):
            text = text.lstrip("0")
        return text
    if kind == "number":
        if fmt == "int":
            return int(value) if float(value).is_integer() else None
        if fmt == "float":
            return float(value)
        return str(value)
    if kind == "email":
        return value.lower() if fmt == "lower" else value
    return None


def formats_of(kind: str, value: Any, target: Any) -> list[str]:
    """The formats in which `value` of `kind` is written as `target`."""
    if kind == "date":
        options: tuple[str, ...] = DATE_FORMATS
    elif kind == "time":
        options = TIME_FORMATS
    elif kind == "number":
        options = ("int", "float", "str")
    else:
        options = ("as_is", "lower")
    out = []
    for fmt in options:
        got = render(kind, value, fmt)
        if got is not None and type(got) is type(target) and got == target:
            out.append(fmt)
    return out


def parse_as(kind: str, target: Any) -> Any:
    """The value of `kind` that an argument value writes, or None: "2024-05-26" is a
    date, "08:00" a time. Used to find typed sources for an observed argument."""
    if kind == "number":
        if isinstance(target, bool) or not isinstance(target, int | float | str):
            return None
        try:
            return float(target) if isinstance(target, str) else target
        except ValueError:
            return None
    if not isinstance(target, str) or len(target) > 40:
        return None
    if kind == "email":
        return target if _EMAIL.fullmatch(target) else None
    if not _LOOKS[kind].fullmatch(target):
        return None
    return _parsed(kind, target)


@functools.lru_cache(maxsize=4096)
def _parsed(kind: str, target: str) -> Any:
    """A date or time string parsed (strptime is slow; the same values recur)."""
    formats = DATE_FORMATS if kind == "date" else TIME_FORMATS
    for fmt in formats:
        try:
            parsed = dt.datetime.strptime(target, fmt)
        except ValueError:
            continue
        return parsed.date() if kind == "date" else parsed.time()
    return None


def reference_day(t: float) -> dt.date | None:
    """The calendar day of a request's own time, when `t` is a wall-clock time (replayed
    sessions without timestamps start at 0: no day)."""
    if not 946_684_800 <= t < 253_402_300_800:  # 2000 to 9999: a wall-clock time
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).date()


_NEXT_WORD = re.compile(r"\s*([A-Za-z][\w\-]*)")
_PREV_WORD = re.compile(r"([A-Za-z][\w\-]*)\s*$")


@functools.lru_cache(maxsize=256)
def numbers_with_words(text: str) -> tuple[tuple[int | float, str, str], ...]:
    """Each number in the text (digits or words) with the words right before and after
    it, casefolded: "30 gallons" -> (30, "", "gallons")."""
    out = []
    for m, n in _number_matches(text):
        after = _NEXT_WORD.match(text, m.end())
        before = _PREV_WORD.search(text, max(0, m.start() - 40), m.start())
        out.append(
            (n, before[1].casefold() if before else "", after[1].casefold() if after else "")
        )
    return tuple(out)


_COUNT_BEFORE = frozenset({"top", "first", "best", "last", "the"})
_COUNT_AFTER = frozenset({"best", "top", "most", "highest", "cheapest", "closest", "nearest"})
_COUNT_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)?|(?<![\d.])\d{1,2}(?![\d.,:/\-])")
_EVERY = re.compile(r"\b(?:each|every|all)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def stated_count(text: str) -> int | None:
    """How many of a list the text asks for: "the top three", "the 2 best", "first five";
    0 for "each", "every", "all" (the whole list); None when it says neither."""
    words = [w.lower() for w in _COUNT_WORD.findall(text)]
    for i, w in enumerate(words):
        n = _count(w) if w != "a" else None
        if n is None or not 1 <= n <= 20:
            continue
        if (i > 0 and words[i - 1] in _COUNT_BEFORE) or (
            i + 1 < len(words) and words[i + 1] in _COUNT_AFTER
        ):
            return n
    return 0 if _EVERY.search(text) else None
