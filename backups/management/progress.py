"""Progress of the commands: one tqdm bar per phase, on stderr, fed by a
service's observer(done, total, phase) in the command's own thread (no
polling, no second database connection).

* A new phase closes the bar of the previous one (at 100 %: the service
  only moves on once a phase is done) and opens a bar named after it;
  byte counts go to the open bar. So each bar reaches 100 % once, and a
  restore no longer runs the safety backup's bytes and then the
  extraction's through one bar.
* While bars are shown, the console handlers of the loggers (the
  ``logging.StreamHandler`` settings.LOGGING gives ``mcsite``, ``celery``,
  …) write through tqdm (bars cleared, line written, bars drawn again), and
  so does the command's own output (``progress.write``): log lines are never
  written into a bar.
* Without bars (``--no-progress``) each phase is one plain line.
"""

import logging
from contextlib import contextmanager

from tqdm import tqdm

CONTINUE = "continue"  # the phase goes on in the open bar
END = "end"  # the open bar's phase is over; no new bar

# What the services call their phases (set_phase, restore steps) and the
# bar each one gets. A phase not listed gets a bar named after it.
PHASES = {
    "queued": CONTINUE,
    "prechecks": "checking",
    "checking": "checking",
    "stopping": "stopping",
    "pausing_saves": "pausing saves",
    "stopped": END,
    "safety_backup": "safety backup",
    "safety_backup_taken": END,
    "archiving": "archiving",
    "verifying": "verifying",
    "extracting": "extracting",
    "staging": CONTINUE,
    "extracted": "finishing",  # carrying excluded files over, the swap, the check, the start
    "kept_excluded": CONTINUE,
    "rename": CONTINUE,
    "swapped": CONTINUE,
    "started": CONTINUE,
    "committed": CONTINUE,
    "done": END,
    "failed": END,
}
# Inside a restore's safety backup, the backup pipeline's own phases.
SAFETY_PHASES = {"archiving": CONTINUE, "verifying": "verifying safety backup", "prechecks": CONTINUE}

_STEPS = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]"  # a phase without byte counts (yet)


def _bar_stream(output):
    """The stream under a command's stdout/stderr (Django's OutputWrapper
    ends every write with a newline; bars need to write bare \\r)."""
    return getattr(output, "_out", output)


class PhaseProgress:
    """observe(done, total, phase) for backup_run / restore_run; write(text)
    for anything printed while a bar may be shown."""

    def __init__(self, stream, *, enabled: bool = True, plain_lines: bool = True):
        self.stream = _bar_stream(stream)
        self.enabled = enabled
        self.plain_lines = plain_lines
        self.bar: tqdm | None = None
        self.name: str | None = None
        self.in_safety_backup = False

    # -- observer -------------------------------------------------------------

    def observe(self, done=None, total=None, phase=None) -> None:
        if phase:
            self.phase(phase)
        if done is not None or total:
            self.advance(done, total)

    def phase(self, phase: str) -> None:
        if phase == "safety_backup":
            self.in_safety_backup = True
        elif phase == "safety_backup_taken":
            self.in_safety_backup = False
        action = (SAFETY_PHASES if self.in_safety_backup else {}).get(phase) or PHASES.get(phase)
        if action is None:
            action = phase.replace("_", " ")
        if action == CONTINUE or action == self.name:
            return
        self.close(complete=True)
        if action != END:
            self.start(action)

    def start(self, name: str) -> None:
        """Opens the bar of a phase (closing the open one, complete). It counts
        bytes once the phase reports them (advance), else shows the time."""
        self.close(complete=True)
        self.name = name
        if not self.enabled:
            if self.plain_lines:
                self.write(f"{name} ...", self.stream)
            return
        self.bar = tqdm(total=1, desc=name, bar_format=_STEPS, file=self.stream, dynamic_ncols=True, leave=True)

    def advance(self, done=None, total=None) -> None:
        """Byte counts of the open phase: `done` of `total`."""
        if self.name is None:
            self.start("working")
        bar = self.bar
        if bar is None:
            return
        if total and bar.bar_format == _STEPS:  # the phase's bytes are known now: show them
            bar.bar_format, bar.unit, bar.unit_scale, bar.unit_divisor = None, "B", True, 1024
            bar.n = 0
        if total:
            bar.total = max(total, done or 0)
        if done is None or bar.bar_format == _STEPS:
            return
        done = min(done, bar.total)
        if done >= bar.n:
            bar.update(done - bar.n)
        else:
            bar.n = done
            bar.refresh()

    def close(self, *, complete: bool) -> None:
        """Ends the open bar: at 100 % when its phase finished, else where it stopped."""
        bar, self.bar, self.name = self.bar, None, None
        if bar is None:
            return
        if complete and bar.total:
            bar.n = bar.total
        bar.close()

    def finish(self, ok: bool) -> None:
        """The run is over: its last phase finished (ok) or not."""
        self.close(complete=ok)

    # -- output -----------------------------------------------------------------

    def write(self, text: str, stream=None) -> None:
        """One line on `stream` (default: the bars' stream), bars cleared
        first and drawn again after (tqdm.write, to any stream)."""
        out = stream if stream is not None else self.stream
        with tqdm.external_write_mode(file=self.stream):
            if hasattr(out, "style_func"):  # a command's OutputWrapper adds the newline itself
                out.write(text)
            else:
                out.write(text + "\n")
            out.flush()


class _ThroughBars(logging.Handler):
    """Stands in for a console StreamHandler while bars are shown: the same
    level, filters and format, written through PhaseProgress.write."""

    def __init__(self, original: logging.StreamHandler, progress: PhaseProgress):
        super().__init__(original.level)
        self.original, self.progress = original, progress
        self.setFormatter(original.formatter)
        self.filters = list(original.filters)

    def emit(self, record):
        try:
            self.progress.write(self.format(record), self.original.stream)
        except Exception:  # noqa: BLE001 — logging never raises
            self.handleError(record)


def _console_handlers():
    """(logger, handler) for every plain console StreamHandler (file handlers
    and pytest's capture handlers are subclasses and are left alone)."""
    loggers = [logging.getLogger()]
    loggers += [logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    return [(logger, handler) for logger in loggers for handler in list(logger.handlers)
            if type(handler) is logging.StreamHandler]


@contextmanager
def logs_through(progress: PhaseProgress):
    """Console log lines go through the bars for the duration."""
    swapped = []
    if progress.enabled:
        for logger, handler in _console_handlers():
            stand_in = _ThroughBars(handler, progress)
            _replace(logger, handler, stand_in)
            swapped.append((logger, handler, stand_in))
    try:
        yield
    finally:
        for logger, handler, stand_in in swapped:
            _replace(logger, stand_in, handler)


def _replace(logger: logging.Logger, old: logging.Handler, new: logging.Handler) -> None:
    """In place, so the handlers keep their order."""
    try:
        logger.handlers[logger.handlers.index(old)] = new
    except ValueError:  # removed meanwhile by someone else
        pass


@contextmanager
def phase_progress(stream, *, enabled: bool = True, first: str | None = None, plain_lines: bool = True):
    """A PhaseProgress for the duration, log lines routed through it. The
    command calls finish(ok) once the run is over; leaving without it (an
    error) leaves the open bar where it stopped."""
    progress = PhaseProgress(stream, enabled=enabled, plain_lines=plain_lines)
    with logs_through(progress):
        try:
            if first:
                progress.start(first)
            yield progress
        finally:
            progress.close(complete=False)
