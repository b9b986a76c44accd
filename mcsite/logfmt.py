"""One log record, one line (issue #11): the formatter of logs/app.log escapes
line breaks and every other control, separator or format character in a
record's message, so text that came from outside (a server name, an RCON
reply, an exception message) can never start a forged line. The event lines
(backups/events.py) are already escaped logfmt and pass through unchanged;
tracebacks (exc_info) still follow on their own lines, as Python prints them.

No Django import here: LOGGING loads it while settings are configured."""

import logging

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
                       else f"\\U{code:08x}")
    return "".join(out)


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)
