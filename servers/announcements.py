"""What players are told before and after a backup, as a user sets it: the
countdown marks and the texts (issue #12). One rule book for the API
serializer, the web form and the admin; the backups app says them
(backups/services/announce.py).

* ``announce_countdown``: seconds before the stop at which to warn,
  comma-separated, e.g. "60,30,10": positive whole numbers, each at most
  600, at most 10 of them; written in any order, kept longest first without
  repeats. Empty: one warning at once, no wait.
* ``announce_message`` (``{seconds}`` is replaced by the time left) and
  ``announce_done_message``: at most 200 characters, one line, no control
  characters — each is sent as one RCON ``say``.
"""

import re

MAX_MARKS = 10
MAX_MARK_SECONDS = 600
MAX_MESSAGE = 200
SECONDS = "{seconds}"
# C0, DEL, C1 and the Unicode line/paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class AnnouncementError(ValueError):
    """A setting the players could not be told with; the message says why."""


def parse_countdown(text) -> list[int]:
    """The marks of a countdown, longest first ("10, 60,30" → [60, 30, 10])."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise AnnouncementError("Must be a string of seconds, e.g. \"60,30,10\".")
    parts = [part.strip() for part in text.split(",")]
    if parts == [""]:
        return []
    marks = set()
    for part in parts:
        if not part.isascii() or not part.isdigit():
            raise AnnouncementError(
                f"{part!r} is not a number of seconds: write whole seconds separated by commas, e.g. \"60,30,10\".")
        value = int(part)
        if not 1 <= value <= MAX_MARK_SECONDS:
            raise AnnouncementError(f"Each mark must be between 1 and {MAX_MARK_SECONDS} seconds (not {value}).")
        marks.add(value)
    if len(marks) > MAX_MARKS:
        raise AnnouncementError(f"At most {MAX_MARKS} warnings (there are {len(marks)}).")
    return sorted(marks, reverse=True)


def normalise_countdown(text) -> str:
    """The countdown as stored: "60,30,10" (validated, longest first)."""
    return ",".join(str(mark) for mark in parse_countdown(text))


def check_message(text, *, required: bool = True) -> str:
    """A message as stored: trimmed, one line, at most 200 characters."""
    if not isinstance(text, str):
        raise AnnouncementError("Must be a string.")
    text = text.strip()
    if required and not text:
        raise AnnouncementError("Enter the text players read.")
    if len(text) > MAX_MESSAGE:
        raise AnnouncementError(f"At most {MAX_MESSAGE} characters (this one has {len(text)}).")
    if _CONTROL.search(text):
        raise AnnouncementError("One line only: no line breaks, tabs or other control characters.")
    return text


def say_text(text: str, *, seconds: int | None = None) -> str:
    """What is sent after ``say``: {seconds} filled in, any control character
    (line breaks included) turned into a space, so one message stays one
    command whatever is stored."""
    if seconds is not None:
        text = text.replace(SECONDS, str(seconds))
    return " ".join(_CONTROL.sub(" ", text).split())[:MAX_MESSAGE * 2]
