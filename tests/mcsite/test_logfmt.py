"""Issue #11 (A, defence in depth): whatever a logger is handed (an RCON
reply, an exception message holding a server name), app.log gets one line."""

import logging
from logging.handlers import WatchedFileHandler

from mcsite.logfmt import OneLineFormatter, one_line


def _app_file_formatter():
    return next(h.formatter for h in logging.getLogger("mcsite").handlers if isinstance(h, WatchedFileHandler))


def test_app_log_formatter_keeps_any_message_on_one_line():
    formatter = _app_file_formatter()
    assert isinstance(formatter, OneLineFormatter)
    record = logging.LogRecord("mcsite.servers", logging.INFO, __file__, 1,
                               "server_control server_id=%s %s", (3, "save-off: ok\r\n2025-01-14 02:00:04,512 "
                                                                  "ERROR mcsite.events backup_failed server_id=1"), None)
    text = formatter.format(record)
    assert len(text.splitlines()) == 1
    assert text.endswith("save-off: ok\\r\\n2025-01-14 02:00:04,512 ERROR mcsite.events backup_failed server_id=1")


def test_one_line_leaves_printable_text_alone_and_escapes_the_rest():
    assert one_line('server="a b" \\ Überleben') == 'server="a b" \\ Überleben'
    assert one_line("a\tb\x00c\u2028d\x85e") == "a\\tb\\x00c\\u2028d\\x85e"


def test_tracebacks_still_follow_on_their_own_lines():
    formatter = _app_file_formatter()
    try:
        raise ValueError("boom\nsecond")
    except ValueError:
        import sys

        record = logging.LogRecord("mcsite.x", logging.ERROR, __file__, 1, "failed %s", ("a\nb",), sys.exc_info())
    text = formatter.format(record)
    first, *rest = text.splitlines()
    assert first.endswith("failed a\\nb") and rest[0].startswith("Traceback")
