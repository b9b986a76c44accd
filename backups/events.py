"""The event lines of logs/app.log (SPEC §9): one line per event, starting
with the seed's key so `grep backup_failed logs/app.log` finds them, and
naming the server and the backup.

Values are written logfmt style (``key=value``; quoted and backslash-escaped
when not simple), so a name holding quotes, ``=`` or line breaks can never
forge another event; ``parse_event_line`` reads a line back."""

import logging
import re

logger = logging.getLogger("mcsite.events")

ERROR_EVENTS = {
    "backup_failed", "verification_failed", "schedule_execution_failure", "corruption_detected",
    "restore_failed", "backup_recheck_failed", "offsite_copy_failed", "node_down",
}
WARNING_EVENTS = {"disk_usage_high", "backup_refused"}
_KEY = re.compile(r"[A-Za-z0-9_]+")


def _is_bare(value: str) -> bool:
    return bool(value) and all(c.isprintable() and c not in ' "\\=' for c in value)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch.isprintable():  # also False for U+2028/2029, NEL, bidi controls: they are escaped
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _value(value) -> str:
    """logfmt: a simple value as is (``survival``, ``41``, ``server_backup_….tar.gz``);
    anything else (empty, spaces, ``"``, ``\\``, ``=``, any control, separator
    or format character) double-quoted with ``\\" \\\\ \\n \\r \\t \\xNN \\uNNNN``
    escapes, so a line is one event whatever a name holds."""
    text = str(value)
    if _is_bare(text):
        return text
    return '"' + "".join(_escape_char(ch) for ch in text) + '"'


log_value = _value  # for other modules' key=value log lines


def _key(key) -> str:
    """Keys come from code, but a line must stay one event even if one did not."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(key)) or "_"


def log_event(event: str, *, server=None, backup=None, **fields) -> str:
    parts = [_key(event)]
    if server is not None:
        parts.append(f"server_id={server.pk}")
        parts.append(f"server={_value(server.name)}")
    if backup is not None:
        parts.append(f"backup_id={backup.pk}")
        parts.append(f"backup={_value(backup.filename or '-')}")
    parts.extend(f"{_key(key)}={_value(value)}" for key, value in fields.items() if value is not None)
    line = " ".join(parts)
    level = logging.ERROR if event in ERROR_EVENTS else logging.WARNING if event in WARNING_EVENTS else logging.INFO
    logger.log(level, line)
    return line


_LOG_PREFIX = re.compile(r"^\S+ \S+ [A-Z]+ mcsite\.events ")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def parse_event_line(line: str) -> tuple[str, dict[str, str]]:
    """(event, {key: value}) of one event line, with or without the
    ``<date> <time> <LEVEL> mcsite.events`` prefix app.log puts before it.
    Raises ValueError for anything ``log_event`` would not have written."""
    text = _LOG_PREFIX.sub("", line.rstrip("\n"), count=1)
    event, _, rest = text.partition(" ")
    if not _KEY.fullmatch(event):
        raise ValueError(f"not an event line: {line[:80]!r}")
    fields: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        eq = rest.find("=", i)
        key = rest[i:eq] if eq >= 0 else ""
        if not _KEY.fullmatch(key):
            raise ValueError(f"bad key at {i}: {rest[i:i + 40]!r}")
        if key in fields:
            raise ValueError(f"key {key!r} twice")
        i = eq + 1
        if rest.startswith('"', i):
            value, i = _read_quoted(rest, i + 1)
        else:
            end = rest.find(" ", i)
            end = n if end < 0 else end
            value = rest[i:end]
            if not value or not _is_bare(value):
                raise ValueError(f"bad bare value for {key!r}: {value!r}")
            i = end
        fields[key] = value
        if i < n:
            if rest[i] != " ":
                raise ValueError(f"expected a space after {key!r}")
            i += 1
            if i == n:
                raise ValueError("trailing space")
    return event, fields


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    out = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            code = text[i + 1]
            if code in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[code])
                i += 2
                continue
            width = _HEX_ESCAPES.get(code)
            digits = text[i + 2:i + 2 + width] if width else ""
            if not width or len(digits) != width or not re.fullmatch(r"[0-9a-f]+", digits):
                raise ValueError(f"bad escape {text[i:i + 10]!r}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
            continue
        if not ch.isprintable():
            raise ValueError(f"raw control character {ch!r} in a quoted value")
        out.append(ch)
        i += 1
    raise ValueError("unterminated quoted value")
