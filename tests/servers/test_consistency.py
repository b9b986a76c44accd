import hashlib
import io
import struct
import time
import zlib

import nbtlib
import pytest

from servers import control
from servers.consistency import live_save_paused, stopped_for_backup
from servers.control import ServerControlError, StopStep
from servers.rcon import RconConnectionRefused
from tests.fakes import fixtures

pytestmark = pytest.mark.timeout(60)

# The fake-server fixtures (the root conftest may import them too).
fake_server = fixtures.fake_server
fake_server_factory = fixtures.fake_server_factory


def world_hash(world) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in world.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(world)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def wait_for_world_change(world, timeout: float = 3.0) -> bool:
    before, deadline = world_hash(world), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if world_hash(world) != before:
            return True
    return False


def assert_valid_world(world) -> None:
    """level.dat is NBT with a Data compound; every region chunk lies inside its
    file and decompresses to NBT (what the backup's world check demands)."""
    assert "Data" in nbtlib.load(world / "level.dat")
    for region in world.glob("region/*.mca"):
        data = region.read_bytes()
        assert len(data) % 4096 == 0 and len(data) >= 8192
        for index in range(1024):
            (entry,) = struct.unpack_from(">I", data, index * 4)
            if entry:
                offset, sectors = (entry >> 8) * 4096, entry & 0xFF
                assert offset + sectors * 4096 <= len(data)
                length, compression = struct.unpack_from(">IB", data, offset)
                assert compression == 2 and length + 4 <= sectors * 4096
                nbtlib.File.parse(io.BytesIO(zlib.decompress(data[offset + 5 : offset + 4 + length])))


@pytest.fixture
def running(fake_server):
    control.start(fake_server.spec)
    fake_server.wait_ready()
    return fake_server


# -- stop mode ------------------------------------------------------------------


def test_stop_mode_stops_the_server_for_the_body_and_starts_it_again(running):
    old_pid = running.spec.pid
    started = []
    with stopped_for_backup(running.spec, on_started=started.append) as state:
        assert state.was_running and state.stop_outcome.step is StopStep.RCON
        assert control.find_process(running.spec) is None
        with pytest.raises(RconConnectionRefused):
            running.rcon(timeout=1).connect()
        assert not wait_for_world_change(running.world, timeout=0.5)
    assert state.restarted_status.running and state.restarted_status.pid != old_pid
    assert started == [state.restarted_status]
    assert running.spec.pid == state.restarted_status.pid  # persisted by the caller
    assert control.status(running.spec).pid == state.restarted_status.pid
    running.wait_ready()


def test_stop_mode_starts_the_server_again_when_the_body_raises(running):
    old_pid = running.spec.pid
    with pytest.raises(RuntimeError, match="archive failed"), stopped_for_backup(running.spec) as state:
        raise RuntimeError("archive failed")
    assert state.restarted_status.pid != old_pid
    assert control.status(running.spec).running


def test_stop_mode_leaves_a_stopped_server_stopped(fake_server):
    with stopped_for_backup(fake_server.spec) as state:
        assert not state.was_running and state.stop_outcome.step is StopStep.NOT_RUNNING
    assert state.restarted_status is None
    assert not control.status(fake_server.spec).running


def test_stop_mode_restart_failure_is_raised_after_the_body_error(running):
    with (
        pytest.raises(ServerControlError, match="could not be started again") as excinfo,
        stopped_for_backup(running.spec),
    ):
        running.spec.start_command += " --crash-after 0"  # the restart will fail
        raise RuntimeError("archive failed")
    assert "archive failed" in str(excinfo.value)
    chain, error = [], excinfo.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, RuntimeError) and str(e) == "archive failed" for e in chain)


# -- live mode ------------------------------------------------------------------


def test_live_mode_keeps_the_world_still_during_the_body_without_downtime(running):
    assert wait_for_world_change(running.world), "the fake should be writing its world"
    pid = running.spec.pid
    with live_save_paused(running.spec, timeout=10) as pause:
        assert pause.was_running and pause.paused and "saved the game" in pause.flush_reply.lower()
        at_entry = world_hash(running.world)
        time.sleep(1.0)
        assert world_hash(running.world) == at_entry
        assert_valid_world(running.world)
        assert control.status(running.spec).pid == pid
    assert control.status(running.spec).pid == pid
    assert wait_for_world_change(running.world), "saving should be back on"


def test_live_mode_turns_saving_back_on_when_the_body_raises(running):
    log = []
    with (
        pytest.raises(RuntimeError, match="archive failed"),
        live_save_paused(running.spec, log.append, timeout=10),
    ):
        at_entry = world_hash(running.world)
        time.sleep(0.5)
        assert world_hash(running.world) == at_entry
        raise RuntimeError("archive failed")
    assert any("Automatic saving is now enabled" in line for line in log)
    assert wait_for_world_change(running.world)


def test_live_mode_on_a_stopped_server_needs_no_rcon(fake_server):
    log = []
    with live_save_paused(fake_server.spec, log.append) as pause:
        assert not pause.was_running and not pause.paused
    assert "not running" in log[0]


def test_live_mode_on_a_copied_real_world(fake_server_factory):
    server = fake_server_factory(copy_real_world=True)
    control.start(server.spec)
    server.wait_ready()
    assert wait_for_world_change(server.world / "region")
    with live_save_paused(server.spec, timeout=10):
        at_entry = world_hash(server.world)
        time.sleep(0.5)
        assert world_hash(server.world) == at_entry
        assert_valid_world(server.world)


def test_live_mode_with_a_hung_rcon_fails_clearly_and_in_time(fake_server_factory):
    server = fake_server_factory(flags=("--hang-rcon",))
    control.start(server.spec)
    started = time.monotonic()
    with (
        pytest.raises(ServerControlError, match="Cannot pause world saving"),
        live_save_paused(server.spec, timeout=1),
    ):
        pytest.fail("the body must not run")
    assert time.monotonic() - started < 3
