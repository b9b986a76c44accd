"""`make run` on a busy port fails at once, naming the port and the variable
to change, before it migrates or starts a worker and beat."""

import socket

import pytest

from mcsite import run


@pytest.fixture
def busy_port():
    """A port on 127.0.0.1 someone is listening on (another `make run`)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    yield listener.getsockname()[1]
    listener.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_busy_port_is_named_with_the_variable_to_change(busy_port):
    problem = run.port_problem("127.0.0.1", busy_port)
    assert problem is not None
    assert str(busy_port) in problem and "MCSITE_PORT" in problem and "in use" in problem


def test_a_free_port_is_no_problem():
    assert run.port_problem("127.0.0.1", _free_port()) is None


def test_an_address_this_host_does_not_have_names_mcsite_bind():
    problem = run.port_problem("192.0.2.1", _free_port())  # TEST-NET-1: never a local address
    assert problem is not None and "MCSITE_BIND" in problem


def test_make_run_on_a_busy_port_starts_nothing(busy_port, monkeypatch, settings, capsys, tmp_path):
    started = []
    settings.MCSITE_PORT = busy_port
    monkeypatch.setenv("MCSITE_BIND", "127.0.0.1")
    monkeypatch.setattr(run, "ROOT", tmp_path)  # the beat pid file of the running site stays
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "celerybeat.pid").write_text("12345\n")
    monkeypatch.setattr(run, "_django_setup", lambda: None)
    monkeypatch.setattr(run, "prepare", lambda: started.append("prepare"))
    monkeypatch.setattr(run, "supervise", lambda cmds: started.append("supervise") or 0)
    assert run.main() != 0
    assert started == []
    assert (tmp_path / "var" / "celerybeat.pid").exists()
    err = capsys.readouterr().err
    assert str(busy_port) in err and "MCSITE_PORT" in err
