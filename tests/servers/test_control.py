import os
import subprocess
import time

import psutil
import pytest

from servers import control
from servers.control import ServerControlError, StopStep
from servers.rcon import RconConnectionRefused
from tests.fakes import fixtures

pytestmark = pytest.mark.timeout(60)

# The fake-server fixtures (the root conftest may import them too).
fake_server = fixtures.fake_server
fake_server_factory = fixtures.fake_server_factory


class Lines(list):
    def __call__(self, message):
        self.append(message)

    def text(self):
        return "\n".join(self)


def test_start_runs_detached_and_logs_to_the_server_folder(fake_server):
    log = Lines()
    status = control.start(fake_server.spec, log)
    assert status.running and status.pid == fake_server.spec.pid
    assert status.create_time == pytest.approx(psutil.Process(status.pid).create_time())
    assert fake_server.spec.pid_create_time == status.create_time
    assert status.rss_bytes > 0 and status.uptime_seconds >= 0
    assert psutil.Process(status.pid).cwd() == str(fake_server.directory)
    assert os.getsid(status.pid) == status.pid  # detached in its own session
    fake_server.wait_ready()
    console = (fake_server.directory / "logs" / "mcsite-console.log").read_text()
    assert "Done (" in console and 'For help, type "help"' in console
    assert "logs/mcsite-console.log" in log.text()


def test_start_refuses_when_already_running(fake_server):
    control.start(fake_server.spec)
    with pytest.raises(ServerControlError, match="already running"):
        control.start(fake_server.spec)
    fresh = control.ServerProcessSpec(fake_server.directory, fake_server.spec.start_command)  # pid unknown
    with pytest.raises(ServerControlError, match="already running"):
        control.start(fresh)


def test_start_of_a_command_that_exits_at_once_raises_with_the_log_tail(fake_server_factory):
    server = fake_server_factory(flags=("--crash-after", "0"))
    with pytest.raises(ServerControlError, match=r"(?s)exited at once with code 1.*fake crash at start-up"):
        control.start(server.spec)
    assert not control.status(server.spec).running


def test_start_of_a_missing_program_raises(fake_server):
    fake_server.spec.start_command = "/nonexistent/java -jar server.jar nogui"
    with pytest.raises(ServerControlError, match="Could not run the start command"):
        control.start(fake_server.spec)


def test_stop_uses_rcon_and_the_server_saves(fake_server):
    control.start(fake_server.spec)
    fake_server.wait_ready()
    pid = fake_server.spec.pid
    log = Lines()
    outcome = control.stop(fake_server.spec, log)
    assert outcome.step is StopStep.RCON and outcome.was_running and outcome.pid == pid
    assert outcome.elapsed_seconds < 2
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not control.status(fake_server.spec).running
    assert fake_server.spec.pid is None
    assert "Saving worlds" in (fake_server.directory / "logs" / "mcsite-console.log").read_text()
    assert "Stopping the server" in log.text()
    assert control.stop(fake_server.spec).step is StopStep.NOT_RUNNING


def test_a_server_ignoring_stop_is_sigtermed_after_the_stop_timeout(fake_server_factory):
    server = fake_server_factory(flags=("--ignore-stop",), stop_timeout=1.5)
    control.start(server.spec)
    server.wait_ready()
    log = Lines()
    outcome = control.stop(server.spec, log)
    assert outcome.step is StopStep.SIGTERM
    assert 1.5 <= outcome.elapsed_seconds < 1.5 + 3
    assert "sending SIGTERM" in log.text()
    assert not control.status(server.spec).running


def test_a_server_ignoring_stop_and_sigterm_is_sigkilled(fake_server_factory):
    server = fake_server_factory(flags=("--ignore-stop",), stop_timeout=1.0)
    control.start(server.spec)
    server.wait_ready()
    server.control(ignore_sigterm=True)
    outcome = control.stop(server.spec)
    assert outcome.step is StopStep.SIGKILL
    assert 2.0 <= outcome.elapsed_seconds < 2.0 + 4
    assert not control.status(server.spec).running


def test_without_rcon_stop_is_typed_on_the_console_fifo(fake_server_factory, tmp_path):
    server = fake_server_factory(rcon=False)
    server.spec.console_fifo = tmp_path / "run" / "console.fifo"
    control.start(server.spec)
    time.sleep(0.3)
    outcome = control.stop(server.spec)
    assert outcome.step is StopStep.CONSOLE
    assert "Stopping the server" in (server.directory / "logs" / "mcsite-console.log").read_text()


def test_console_fifo_inside_the_server_folder_is_refused(fake_server):
    fake_server.spec.console_fifo = fake_server.directory / "console.fifo"
    with pytest.raises(ServerControlError, match="must not be inside the server folder"):
        control.start(fake_server.spec)


def test_without_rcon_or_console_stop_sends_sigterm_and_the_server_saves(fake_server_factory):
    server = fake_server_factory(rcon=False)
    control.start(server.spec)
    time.sleep(0.3)
    outcome = control.stop(server.spec)
    assert outcome.step is StopStep.SIGTERM
    assert "Saving worlds" in (server.directory / "logs" / "mcsite-console.log").read_text()


def test_a_stale_pid_of_another_process_is_not_the_server_and_is_never_signalled(fake_server):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        fake_server.spec.pid = sleeper.pid
        fake_server.spec.pid_create_time = psutil.Process(sleeper.pid).create_time() - 5  # pid reused
        assert control.find_process(fake_server.spec) is None
        assert not control.status(fake_server.spec).running
        assert control.stop(fake_server.spec).step is StopStep.NOT_RUNNING
        server_pid = control.start(fake_server.spec).pid  # a stale pid does not block a start
        assert server_pid != sleeper.pid
        fake_server.wait_ready()
        fake_server.spec.pid = sleeper.pid  # stale again, while the real server runs
        fake_server.spec.pid_create_time = psutil.Process(sleeper.pid).create_time() - 5
        assert control.find_process(fake_server.spec).pid == server_pid
        assert control.stop(fake_server.spec).step is StopStep.RCON
        assert sleeper.poll() is None and psutil.Process(sleeper.pid).status() != psutil.STATUS_ZOMBIE
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_server_started_outside_mcsite_is_found_and_stopped(fake_server):
    outside = subprocess.Popen(
        fake_server.argv,
        cwd=fake_server.directory,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        fake_server.wait_ready()
        assert fake_server.spec.pid is None
        status = control.status(fake_server.spec)
        assert status.running and status.pid == outside.pid
        outcome = control.stop(fake_server.spec)
        assert outcome.step is StopStep.RCON and outcome.pid == outside.pid
        assert outside.wait(timeout=5) == 0
    finally:
        outside.kill()
        outside.wait()


def test_the_same_command_in_another_folder_is_not_this_server(fake_server_factory):
    first, second = fake_server_factory(), fake_server_factory()
    control.start(first.spec)
    assert not control.status(second.spec).running
    control.start(second.spec)
    assert control.status(second.spec).pid == second.spec.pid != first.spec.pid


def test_a_crashed_server_is_reported_stopped(fake_server_factory):
    server = fake_server_factory(flags=("--crash-after", "1.3"))
    control.start(server.spec)
    assert control.status(server.spec).running
    deadline = time.monotonic() + 5
    while control.status(server.spec).running:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_restart_gives_a_new_process(fake_server):
    old = control.start(fake_server.spec)
    fake_server.wait_ready()
    new = control.restart(fake_server.spec)
    assert new.running and new.pid != old.pid
    fake_server.wait_ready()
    with fake_server.rcon() as rcon:
        assert rcon.command("fake-echo hi") == "hi"
    control.stop(fake_server.spec)
    with pytest.raises(RconConnectionRefused):
        fake_server.rcon(timeout=1).connect()


def test_a_server_whose_rcon_hangs_is_sigtermed_without_waiting_for_stop(fake_server_factory):
    server = fake_server_factory(flags=("--hang-rcon",), stop_timeout=1.0)
    control.start(server.spec)
    log = Lines()
    outcome = control.stop(server.spec, log)
    assert outcome.step is StopStep.SIGTERM
    assert outcome.elapsed_seconds < 1.0 + 1.0 + 2  # RCON timeout + SIGTERM, generous
    assert "did not answer login" in log.text()
