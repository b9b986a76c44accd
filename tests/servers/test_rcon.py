import re
import socket
import struct
import threading
import time

import pytest

from servers import control
from servers.rcon import (
    RconAuthError,
    RconClient,
    RconConnectionRefused,
    RconError,
    RconTimeout,
    encode_packet,
)
from tests.fakes import fixtures
from tests.fakes.fake_minecraft import LONG_REPLY

pytestmark = pytest.mark.timeout(60)

# The fake-server fixtures (the root conftest may import them too).
fake_server = fixtures.fake_server
fake_server_factory = fixtures.fake_server_factory


@pytest.fixture
def running_fake(fake_server):
    control.start(fake_server.spec)
    fake_server.wait_ready()
    return fake_server


def test_packet_layout_is_little_endian_length_id_type_body_two_nuls():
    assert encode_packet(7, 2, "list") == struct.pack("<iii", 14, 7, 2) + b"list\0\0"


def test_it_runs_commands_after_login(running_fake):
    with running_fake.rcon() as rcon:
        assert rcon.command("list").startswith("There are 0 of a max 20 players online")
        assert rcon.command("save-off") == "Automatic saving is now disabled"
        assert rcon.command("save-on") == "Automatic saving is now enabled"


def test_multi_packet_reply_is_read_completely(running_fake):
    assert len(LONG_REPLY) > 3 * 4096  # the fake splits it into 5 packets
    with running_fake.rcon() as rcon:
        assert rcon.command("fake-long") == LONG_REPLY
        assert rcon.command("fake-echo after") == "after"  # nothing left over in the stream


def test_wrong_password_raises_auth_error(running_fake):
    client = RconClient("127.0.0.1", running_fake.rcon_port, "not-the-password", timeout=2)
    with pytest.raises(RconAuthError, match="Could not reach the server's RCON") as info:
        client.connect()
    assert "wrong password" in info.value.detail  # the precise reason: log and admins only (issue #11)


def test_refused_port_raises_connection_refused_with_a_hint():
    port = fixtures.free_port()
    with pytest.raises(RconConnectionRefused, match="enable-rcon, rcon.port and the password") as info:
        RconClient("127.0.0.1", port, "pw", timeout=2).connect()
    assert re.search(rf"127\.0\.0\.1:{port} refused.*enable-rcon=true", info.value.detail)


def test_server_that_never_answers_times_out_without_hanging(fake_server):
    fake_server.control(hang_rcon=True)
    control.start(fake_server.spec)
    deadline = time.monotonic() + 10
    while True:  # wait until it listens (the login itself will not be answered)
        try:
            socket.create_connection(("127.0.0.1", fake_server.rcon_port), timeout=1).close()
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(RconTimeout) as info:
        RconClient("127.0.0.1", fake_server.rcon_port, fake_server.rcon_password, timeout=0.5).connect()
    assert "did not answer login within 0.5 s" in info.value.detail
    assert time.monotonic() - started < 2


def test_a_command_that_times_out_leaves_the_client_usable(running_fake):
    with running_fake.rcon(timeout=0.5) as rcon:
        running_fake.control(hang_rcon=True)
        time.sleep(0.2)  # the fake re-reads its control file every loop
        with pytest.raises(RconTimeout):
            rcon.command("list")
        running_fake.control(hang_rcon=False)
        time.sleep(0.2)
        assert rcon.command("fake-echo back") == "back"  # reconnected


def test_it_reconnects_after_the_server_restarted(running_fake):
    with running_fake.rcon() as rcon:
        assert rcon.command("fake-echo one") == "one"
        control.restart(running_fake.spec, log=lambda message: None)
        running_fake.wait_ready()
        assert rcon.command("fake-echo two") == "two"


def test_it_refuses_a_command_the_server_would_drop():
    with pytest.raises(RconError, match="longer than 1446 bytes"):
        RconClient("127.0.0.1", 1, "pw").command("say " + "x" * 1500)


def test_it_never_sends_two_packets_in_one_read():
    """The real server reads one packet per read(1460) and hangs up otherwise:
    the end marker is only sent after the first reply fragment arrived."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    reads = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            for _ in range(3):
                data = conn.recv(1460)
                reads.append(data)
                length, request_id, packet_type = struct.unpack_from("<iii", data)
                assert length == len(data) - 4
                time.sleep(0.1)  # give a careless client time to pipeline
                reply = "" if packet_type == 3 else ("pong" if packet_type == 2 else "Unknown request 64")
                conn.sendall(encode_packet(request_id, 2 if packet_type == 3 else 0, reply))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with RconClient("127.0.0.1", listener.getsockname()[1], "pw", timeout=3) as rcon:
        assert rcon.command("ping") == "pong"
    thread.join(5)
    listener.close()
    assert [struct.unpack_from("<i", data, 8)[0] for data in reads] == [3, 2, 100]
