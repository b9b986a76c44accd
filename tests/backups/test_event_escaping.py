"""Issue #11 (A): one line of logs/app.log is one event, whatever a server
name holds. Values are written logfmt style: bare when simple, else a
double-quoted string with backslash escapes; `parse_event_line` reads them back."""

import logging
from logging.handlers import WatchedFileHandler
from pathlib import Path
from types import SimpleNamespace

import pytest

from backups import events
from backups.events import log_event, parse_event_line
from backups.services.runs import backup_run, backup_trigger

HOSTILE_NAMES = [
    'quote" server_id=1 server=victim',
    "crlf\r\n2025-01-14 02:00:04,512 ERROR mcsite.events backup_failed server_id=1 server=victim backup_id=1",
    "cr only\rbackup_failed server_id=1 server=victim",
    "lf only\nbackup_failed server_id=1 server=victim",
    "a=b=c",
    "back\\slash\\\" end\\",
    "tab\there",
    "nul\x00bell\x07esc\x1b[31mred",
    "unicode Überleben 世界 🎮",
    "line sep\u2028next\u2029para\x85nel",
    "bidi \u202eemordnilap",
    "trailing space ",
    " ",
    "",
    '"',
    "\\",
    "x" * 200,
    ("é\"\\\r\n=" * 40),
]


@pytest.fixture
def app_log(tmp_path):
    """What logs/app.log receives, through the app_file handler's own
    formatter, in a file of this test's own (the real app.log is shared with
    whatever else runs on this machine)."""
    app_file = next(h for h in logging.getLogger("mcsite").handlers if isinstance(h, WatchedFileHandler))
    assert Path(app_file.baseFilename).name == "app.log"
    path = tmp_path / "app.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(app_file.formatter)
    logging.getLogger("mcsite").addHandler(handler)
    yield path
    logging.getLogger("mcsite").removeHandler(handler)
    handler.close()


def _server(pk, name):
    return SimpleNamespace(pk=pk, name=name)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_each_hostile_name_gives_one_line_that_parses_back(name):
    line = log_event("backup_failed", server=_server(7, name),
                     backup=SimpleNamespace(pk=41, filename="server_backup_20250114_020000.tar.gz"),
                     code="SERVER_DIRECTORY_NOT_FOUND", error=f"Server {name} broke")
    assert len(line.splitlines()) == 1 and "\r" not in line and "\n" not in line
    assert line.isprintable()  # no control, separator or format character at all
    event, fields = parse_event_line(line)
    assert event == "backup_failed"
    assert fields["server_id"] == "7" and fields["server"] == name
    assert fields["backup_id"] == "41" and fields["error"] == f"Server {name} broke"
    assert list(fields) == ["server_id", "server", "backup_id", "backup", "code", "error"]


def test_simple_values_stay_as_the_seed_doc_shows():
    line = log_event("backup_failed", server=_server(3, "survival"),
                     backup=SimpleNamespace(pk=41, filename="server_backup_20250114_020000.tar.gz"),
                     code="SERVER_DIRECTORY_NOT_FOUND", error="Server directory not found")
    assert line == ('backup_failed server_id=3 server=survival backup_id=41 '
                    'backup=server_backup_20250114_020000.tar.gz code=SERVER_DIRECTORY_NOT_FOUND '
                    'error="Server directory not found"')
    assert parse_event_line(line)[1]["error"] == "Server directory not found"


def test_escapes_are_the_logfmt_ones():
    value = events._value('a "b" \\ c\r\n\t\x01\x7f\u2028')
    assert value == '"a \\"b\\" \\\\ c\\r\\n\\t\\x01\\x7f\\u2028"'
    assert events._value("") == '""'
    assert events._value("a=b") == '"a=b"'
    assert events._value("Überleben") == "Überleben"


def test_parser_reads_a_whole_app_log_line_and_refuses_garbage():
    event, fields = parse_event_line(
        '2025-01-14 02:00:04,512 INFO mcsite.events backup_succeeded server_id=3 server="my world" backup_id=41')
    assert event == "backup_succeeded" and fields == {"server_id": "3", "server": "my world", "backup_id": "41"}
    for bad in ('backup_failed server="unterminated', 'backup_failed server="bad \\q escape"',
                "backup_failed server_id=1 server_id=2", "backup_failed dangling"):
        with pytest.raises(ValueError):
            parse_event_line(bad)


def test_field_keys_from_code_cannot_inject_either():
    line = log_event("restore_failed", **{"bad key\n": "v", "ok": "w"})
    event, fields = parse_event_line(line)
    assert event == "restore_failed" and fields == {"bad_key_": "v", "ok": "w"}


@pytest.mark.django_db
def test_hostile_server_names_never_forge_a_backup_failed_line_in_app_log(alice, app_log):
    """Server rows written with the ORM (name validation is someone else's
    layer): their failing backups give one parseable line each, naming the
    right server id and name, and no line claims another server."""
    from servers.models import Server

    victim = Server.objects.create(owner=alice, name="victim", directory="victim-dir")
    servers = {victim.pk: victim}
    for i, name in enumerate(HOSTILE_NAMES):
        # varchar(100); empty names are not servers; PostgreSQL text cannot hold NUL
        if name and len(name) <= 100 and "\x00" not in name:
            server = Server.objects.create(owner=alice, name=name, directory=f"missing-{i}")
            servers[server.pk] = server
            record = backup_trigger(server=server, actor=alice, enqueue=False, precheck=False)
            backup_run(backup_id=record.pk)
            record.refresh_from_db()
            assert record.status == "failed"

    text = app_log.read_bytes().decode("utf-8")
    failed = []
    for raw in text.splitlines():  # splits on \r, \x85, \u2028 … too: the strictest reader
        if " mcsite.events " not in raw:
            continue
        event, fields = parse_event_line(raw)
        if "server_id" in fields:
            server = servers[int(fields["server_id"])]
            assert fields["server"] == server.name
        if event == "backup_failed":
            failed.append(int(fields["server_id"]))
    assert victim.pk not in failed
    assert sorted(failed) == sorted(pk for pk in servers if pk != victim.pk)
