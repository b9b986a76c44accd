"""The commands' progress: one bar per phase, named after it, each reaching
100 % once, on the command's stderr; log lines never written into a bar;
--no-progress draws no bar at all."""

import io
import logging
import re

import pytest
from django.core.management import call_command

from backups.models import RestoreRequest

pytestmark = pytest.mark.django_db

_DRAWING = re.compile(r"^(?P<desc>[^|:]+): +(?P<pct>\d+)%\|")


def _bars(text: str) -> list[tuple[str, list[int]]]:
    """The bars tqdm drew, in order: (name, the percentages it showed)."""
    bars: list[tuple[str, list[int]]] = []
    for chunk in re.split(r"[\r\n]", text):
        match = _DRAWING.match(chunk)
        if not match:
            continue
        desc, pct = match["desc"].strip(), int(match["pct"])
        if bars and bars[-1][0] == desc:
            bars[-1][1].append(pct)
        else:
            bars.append((desc, [pct]))
    return bars


def _assert_each_bar_reaches_100_once(bars):
    names = [name for name, _ in bars]
    assert len(names) == len(set(names)), f"a phase drew more than one bar: {names}"
    for name, pcts in bars:
        assert pcts == sorted(pcts), f"{name} went backwards: {pcts}"
        assert pcts[-1] == 100, f"{name} ended at {pcts[-1]} %"


def _run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _in_order(names, expected) -> bool:
    positions = [names.index(name) for name in expected if name in names]
    return len(positions) == len(expected) and positions == sorted(positions)


def test_backup_now_draws_one_named_bar_per_phase(alice, make_server):
    make_server(alice, "cli-world")
    _, err = _run("backup_now", "cli-world")
    bars = _bars(err)
    names = [name for name, _ in bars]
    assert _in_order(names, ["stopping", "archiving", "verifying"]), names
    _assert_each_bar_reaches_100_once(bars)


def test_restore_draws_a_bar_per_phase_and_none_reaches_100_twice(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    _, err = _run("restore", str(server.pk), record.filename, "--yes")
    bars = _bars(err)
    names = [name for name, _ in bars]
    assert _in_order(names, ["safety backup", "extracting"]), names
    _assert_each_bar_reaches_100_once(bars)


def test_no_progress_draws_no_bars_on_any_command(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    runs = [("backup_now", str(server.pk), "--no-progress"),
            ("verify_backups", "--server", str(server.pk), "--no-progress"),
            ("restore", str(server.pk), record.filename, "--yes", "--no-progress")]
    for args in runs:
        _, err = _run(*args)
        assert "\r" not in err and "%|" not in err, (args, err)
    restore = RestoreRequest.objects.get()
    _, err = _run("rollback", str(server.pk), str(restore.pk), "--yes", "--no-progress")
    assert "\r" not in err and "%|" not in err, err
    assert any(line.startswith("extracting") for line in err.splitlines()), err  # plain lines instead


def test_log_lines_are_never_written_into_a_bar(alice, make_server, take_backup, monkeypatch):
    """The console handler of the mcsite loggers (settings.LOGGING's
    StreamHandler) writes to the terminal the bars are drawn on."""
    server = make_server(alice)
    record = take_backup(server)
    terminal = io.StringIO()
    monkeypatch.setattr("sys.stderr", terminal)
    console = logging.StreamHandler(terminal)
    console.setFormatter(logging.Formatter("%(name)s %(message)s"))
    mcsite_logger = logging.getLogger("mcsite")
    mcsite_logger.addHandler(console)
    try:
        for args in (("backup_now", str(server.pk)), ("restore", str(server.pk), record.filename, "--yes")):
            call_command(*args, stdout=io.StringIO())
            assert console in mcsite_logger.handlers  # put back after the run
    finally:
        mcsite_logger.removeHandler(console)
    text = terminal.getvalue()
    assert "%|" in text, "no bar was drawn"
    logged = [line for line in text.split("\n") if "mcsite.events" in line]
    assert len(logged) >= 4, logged
    for line in logged:
        # A bar is cleared (\r spaces \r) before a log line is written: the
        # line's last drawing is the log record itself, never bar + record.
        assert line.split("\r")[-1].startswith("mcsite.events "), repr(line)
