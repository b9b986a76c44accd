"""Issue #11 (C): the RCON client must not work as a port scanner. Whatever
stops the connection or the login — a closed port, a silent listener, a reset,
something that is not RCON, a wrong password — the message a user sees is the
same; the precise reason is kept on the exception (``detail``) and logged."""

import logging
import socket
import struct
import threading

import pytest

from servers.rcon import (
    UNREACHABLE_MESSAGE,
    RconAuthError,
    RconClient,
    RconConnectionError,
    RconConnectionRefused,
    RconError,
    RconProtocolError,
    RconTimeout,
    encode_packet,
    rcon_failure_message,
)

pytestmark = pytest.mark.timeout(60)


class Listener:
    """A TCP listener on 127.0.0.1 that does `behaviour(conn)` with each connection."""

    def __init__(self, behaviour):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.behaviour = behaviour
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            try:
                self.behaviour(conn)
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for conn in self.conns:
            conn.close()


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _silent(conn):
    pass  # accepts, reads nothing, never answers


def _reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.recv(100)
    conn.close()  # RST


def _hangs_up(conn):
    conn.recv(100)
    conn.close()


def _ssh_banner(conn):
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def _http(conn):
    conn.recv(100)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def _wrong_password(conn):
    conn.recv(1460)
    conn.sendall(encode_packet(-1, 2, ""))


def _wrong_id(conn):
    conn.recv(1460)
    conn.sendall(encode_packet(12345, 2, ""))


CASES = {
    "closed port": (None, RconConnectionRefused),
    "silent listener": (_silent, RconTimeout),
    "reset": (_reset, RconConnectionError),
    "hangs up": (_hangs_up, RconConnectionError),
    "ssh": (_ssh_banner, RconProtocolError),
    "http": (_http, RconProtocolError),
    "wrong password": (_wrong_password, RconAuthError),
    "bad handshake": (_wrong_id, RconProtocolError),
}


def _fail(case) -> RconError:
    behaviour, _ = CASES[case]
    listener = Listener(behaviour) if behaviour else None
    port = listener.port if listener else _closed_port()
    try:
        with pytest.raises(RconError) as info:
            RconClient("127.0.0.1", port, "pw", timeout=0.5).connect()
    finally:
        if listener:
            listener.close()
    return info.value


@pytest.mark.parametrize("case", list(CASES))
def test_every_way_the_connection_or_login_fails_gives_one_user_message(case):
    exc = _fail(case)
    assert str(exc) == UNREACHABLE_MESSAGE
    assert rcon_failure_message(exc, detailed=False) == UNREACHABLE_MESSAGE
    assert isinstance(exc, CASES[case][1])  # code may still tell them apart


def test_details_tell_the_cases_apart_for_the_log_and_admins(caplog):
    with caplog.at_level(logging.INFO, logger="mcsite.servers"):
        details = {case: rcon_failure_message(_fail(case), detailed=True) for case in CASES}
    assert len(set(details.values())) >= 6
    assert "refused" in details["closed port"] and "did not answer login" in details["silent listener"]
    assert "wrong password" in details["wrong password"] and "length" in details["ssh"]
    logged = [r.getMessage() for r in caplog.records if "rcon_unreachable" in r.getMessage()]
    assert len(logged) == len(CASES)
    assert all(line.startswith("server_control rcon_unreachable address=127.0.0.1:") for line in logged)
    assert any("wrong password" in line for line in logged)


def test_messages_after_a_good_login_stay_precise():
    """The peer proved it is the user's own RCON server: its later errors
    (a slow `save-all flush`) tell the user nothing about the network."""
    def login_then_silence(conn):
        data = conn.recv(1460)
        request_id = struct.unpack_from("<i", data, 4)[0]
        conn.sendall(encode_packet(request_id, 2, ""))

    listener = Listener(login_then_silence)
    try:
        client = RconClient("127.0.0.1", listener.port, "pw", timeout=0.5)
        client.connect()
        with pytest.raises(RconTimeout) as info:
            client.command("save-all flush", timeout=0.3)
    finally:
        listener.close()
    assert "did not answer command 'save-all flush' within 0.3 s" in str(info.value)


def test_no_password_is_still_said_plainly():
    with pytest.raises(RconAuthError, match="No RCON password"):
        RconClient("127.0.0.1", 1, "").connect()


def test_rcon_failure_message_of_other_exceptions_is_their_text():
    assert rcon_failure_message(ValueError("x"), detailed=False) == "x"


@pytest.mark.parametrize("case", ["closed port", "silent listener", "http", "wrong password"])
def test_a_live_backup_tells_its_owner_the_same_thing_whatever_listens(case, monkeypatch, tmp_path):
    """The message a live backup fails with (it ends up in the backup record
    and the owner's alert) is the same for every kind of address."""
    from servers import consistency
    from servers.control import ServerControlError, ServerProcessSpec

    monkeypatch.setattr(consistency, "find_process", lambda spec: object())  # "the server runs"
    behaviour, _ = CASES[case]
    listener = Listener(behaviour) if behaviour else None
    port = listener.port if listener else _closed_port()
    spec = ServerProcessSpec(directory=tmp_path, start_command="java -jar server.jar", rcon_host="127.0.0.1",
                             rcon_port=port, rcon_password="pw")
    try:
        with pytest.raises(ServerControlError) as info:
            with consistency.live_save_paused(spec, log=lambda m: None, timeout=0.5):
                pass
    finally:
        if listener:
            listener.close()
    assert str(info.value) == f"Cannot pause world saving for a live backup: {UNREACHABLE_MESSAGE}"


def test_the_stop_chain_logs_the_precise_reason_for_admins(tmp_path):
    from servers.control import ServerProcessSpec, _ask_to_stop

    lines = []
    spec = ServerProcessSpec(directory=tmp_path, start_command="java -jar server.jar", rcon_host="127.0.0.1",
                             rcon_port=_closed_port(), rcon_password="pw", stop_timeout=1)
    assert _ask_to_stop(spec, lines.append) is None
    assert len(lines) == 1 and "refused" in lines[0] and UNREACHABLE_MESSAGE not in lines[0]
