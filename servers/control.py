"""Start, stop and inspect a Minecraft server process, and keep its world still for a backup.

Pure Python (psutil + the RCON client): no Django here. The caller (the Server
model's service) builds a :class:`ServerProcessSpec` and persists ``pid`` /
``pid_create_time``, which :func:`start` and :func:`stop` keep current on the spec.
See docs/server-control.md for the rules in prose.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import psutil

from servers.rcon import RconClient, RconError, rcon_failure_message

logger = logging.getLogger(__name__)

CONSOLE_LOG = Path("logs") / "mcsite-console.log"
CREATE_TIME_TOLERANCE = 0.05  # seconds; a reused pid starts later than that
SIGTERM_WAIT_MAX = 10.0
SIGKILL_WAIT = 5.0
STARTUP_GRACE = 1.0

Log = Callable[[str], None] | logging.Logger | None


class ServerControlError(Exception):
    """Starting, stopping or pausing a server failed; the message says why."""


@dataclass
class ServerProcessSpec:
    directory: Path
    start_command: str  # already formatted: "java -Xms1024M -Xmx1024M -jar server.jar nogui"
    rcon_host: str = "127.0.0.1"
    rcon_port: int = 25575
    rcon_password: str = ""  # empty: no RCON
    stop_timeout: float = 60.0
    pid: int | None = None
    pid_create_time: float | None = None
    # Optional FIFO used as the server's stdin so "stop" can be typed on its
    # console. Must live OUTSIDE the server folder (it would be backed up).
    console_fifo: Path | None = None


@dataclass(frozen=True)
class ProcessStatus:
    running: bool
    pid: int | None = None
    create_time: float | None = None
    uptime_seconds: float | None = None
    rss_bytes: int | None = None
    cpu_percent: float | None = None


class StopStep(str, Enum):
    NOT_RUNNING = "not_running"
    RCON = "rcon"
    CONSOLE = "console"
    SIGTERM = "sigterm"
    SIGKILL = "sigkill"


@dataclass(frozen=True)
class StopOutcome:
    step: StopStep  # the step that ended the process
    was_running: bool
    pid: int | None
    elapsed_seconds: float


def _emit(log: Log, message: str) -> None:
    if isinstance(log, logging.Logger):
        log.info(message)
    elif log is not None:
        log(message)
    else:
        logger.info(message)


# -- finding the process --------------------------------------------------------


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _command_signature(start_command: str) -> tuple[str, str]:
    """(program, target): target is the jar after ``-jar``, else the first
    non-option argument (a script), else the program itself."""
    try:
        argv = shlex.split(start_command)
    except ValueError as exc:
        raise ServerControlError(f"The start command cannot be parsed: {exc}") from exc
    if not argv:
        raise ServerControlError("The start command is empty.")
    args = argv[1:]
    if "-jar" in args and args.index("-jar") + 1 < len(args):
        return argv[0], args[args.index("-jar") + 1]
    return argv[0], next((a for a in args if not a.startswith("-")), argv[0])


def _looks_like_server(cmdline: list[str], directory: str, program: str, target: str) -> bool:
    def same(arg: str, wanted: str) -> bool:
        return os.path.normpath(os.path.join(directory, arg)) == os.path.normpath(
            os.path.join(directory, wanted)
        )

    if not cmdline or not any(same(arg, target) for arg in cmdline):
        return False
    # A script run through its shebang shows up as "interpreter script ...".
    return target == program or os.path.basename(cmdline[0]) == os.path.basename(program)


def find_process(spec: ServerProcessSpec) -> psutil.Process | None:
    """The server's live process, or None.

    1. The recorded pid, only if its create time matches ``pid_create_time``
       (a reused pid is never taken for the server).
    2. Otherwise a process whose cwd is the server folder and whose command
       line has the start command's program (same basename) and target (the
       jar after ``-jar``, else the first script argument). Zombies and this
       process are skipped; with several matches the oldest wins.
    """
    me = os.getpid()
    if spec.pid and spec.pid_create_time is not None and spec.pid != me:
        try:
            proc = psutil.Process(spec.pid)
            if abs(proc.create_time() - spec.pid_create_time) <= CREATE_TIME_TOLERANCE and _alive(proc):
                return proc
        except psutil.Error:
            pass
    directory = os.path.realpath(spec.directory)
    program, target = _command_signature(spec.start_command)
    found = []
    for proc in psutil.process_iter(["cwd", "cmdline", "status", "create_time"]):
        info = proc.info
        if proc.pid == me or info["status"] == psutil.STATUS_ZOMBIE or not info["cwd"]:
            continue
        if os.path.realpath(info["cwd"]) != directory:
            continue
        if _looks_like_server(info["cmdline"] or [], directory, program, target):
            found.append(proc)
    return min(found, key=lambda p: p.info["create_time"]) if found else None


def _status_of(proc: psutil.Process) -> ProcessStatus:
    try:
        with proc.oneshot():
            create_time = proc.create_time()
            uptime = max(0.0, time.time() - create_time)
            cpu = proc.cpu_times()
            return ProcessStatus(
                running=True,
                pid=proc.pid,
                create_time=create_time,
                uptime_seconds=uptime,
                rss_bytes=proc.memory_info().rss,
                # Average over the process's life: no blocking sample needed.
                cpu_percent=round(100.0 * (cpu.user + cpu.system) / uptime, 1) if uptime > 0 else 0.0,
            )
    except psutil.Error:
        return ProcessStatus(running=False)


def status(spec: ServerProcessSpec) -> ProcessStatus:
    proc = find_process(spec)
    return _status_of(proc) if proc is not None else ProcessStatus(running=False)


# -- start ----------------------------------------------------------------------


def _log_tail(path: Path, max_bytes: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            return f.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return "(no log)"


def _open_console_fifo(spec: ServerProcessSpec) -> int:
    fifo = Path(spec.console_fifo).absolute()
    if os.path.realpath(fifo).startswith(os.path.realpath(spec.directory) + os.sep):
        raise ServerControlError(f"The console FIFO {fifo} must not be inside the server folder.")
    fifo.parent.mkdir(parents=True, exist_ok=True)
    if not fifo.exists():
        os.mkfifo(fifo, 0o600)
    elif not stat.S_ISFIFO(fifo.stat().st_mode):
        raise ServerControlError(f"{fifo} exists and is not a FIFO.")
    # Read-write: the server itself then holds a writer, so it never reads EOF.
    return os.open(fifo, os.O_RDWR)


def start(spec: ServerProcessSpec, log: Log = None, *, startup_grace: float = STARTUP_GRACE) -> ProcessStatus:
    """Run the start command in the server folder, detached, output appended to
    ``logs/mcsite-console.log``. Sets ``spec.pid`` / ``spec.pid_create_time``."""
    directory = Path(spec.directory)
    if not directory.is_dir():
        raise ServerControlError(f"Server directory not found: {directory}")
    running = find_process(spec)
    if running is not None:
        raise ServerControlError(f"The server is already running (pid {running.pid}).")
    _command_signature(spec.start_command)  # a clear error for an unusable command
    argv = shlex.split(spec.start_command)
    log_path = directory / CONSOLE_LOG
    log_path.parent.mkdir(exist_ok=True)
    stdin = _open_console_fifo(spec) if spec.console_fifo else os.open(os.devnull, os.O_RDONLY)
    try:
        with open(log_path, "ab") as out:
            out.write(
                f"--- mcsite start {time.strftime('%Y-%m-%d %H:%M:%S')}: {spec.start_command}\n".encode()
            )
            out.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=directory,
                    stdin=stdin,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                out.write(f"--- could not run {argv[0]!r}: {exc}\n".encode())
                raise ServerControlError(f"Could not run the start command {argv[0]!r}: {exc}") from exc
    finally:
        os.close(stdin)
    try:
        code = proc.wait(timeout=startup_grace)
    except subprocess.TimeoutExpired:
        code = None
    if code is None:
        try:
            server = psutil.Process(proc.pid)
            create_time = server.create_time()
        except psutil.NoSuchProcess:
            code = proc.wait()
    if code is not None:
        raise ServerControlError(
            f"The server exited at once with code {code}. End of {log_path}:\n{_log_tail(log_path)}"
        )
    # We are the parent: reap it when it ends, so it never lingers as a zombie.
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    spec.pid, spec.pid_create_time = proc.pid, create_time
    _emit(log, f"Started the server (pid {proc.pid}); console output goes to {log_path}.")
    return _status_of(server)


# -- stop -----------------------------------------------------------------------


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not _alive(proc):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            proc.wait(timeout=min(0.1, left))
            return True
        except psutil.TimeoutExpired:
            pass
        except psutil.Error:
            return True


def _signal(proc: psutil.Process, sig: signal.Signals) -> None:
    """Signal the verified process; its whole group only if it leads its own group."""
    if not _alive(proc):  # is_running() also re-checks the create time
        return
    try:
        if os.getpgid(proc.pid) == proc.pid and proc.pid != os.getpgid(0):
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass


def _ask_to_stop(spec: ServerProcessSpec, log: Log) -> StopStep | None:
    """Send "stop" over RCON, else on the console; the step used, or None."""
    if spec.rcon_password:
        try:
            rcon = RconClient(
                spec.rcon_host, spec.rcon_port, spec.rcon_password, timeout=min(5.0, spec.stop_timeout)
            )
            rcon.connect()
        except RconError as exc:  # the log is for admins: the precise reason
            _emit(log, f"Could not send 'stop' over RCON: {rcon_failure_message(exc, detailed=True)}")
        else:
            try:
                reply = rcon.command("stop")
                _emit(log, f"Sent 'stop' over RCON; the server answered {reply.strip()!r}.")
            except RconError as exc:  # the command went out; a stopping server may hang up
                _emit(log, f"Sent 'stop' over RCON; no clean answer ({exc}).")
            finally:
                rcon.close()
            return StopStep.RCON
    if spec.console_fifo:
        try:
            fd = os.open(spec.console_fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            _emit(log, "The console FIFO has no reader: the server was not started with it.")
        else:
            try:
                os.write(fd, b"stop\n")
            finally:
                os.close(fd)
            _emit(log, "Typed 'stop' on the server console.")
            return StopStep.CONSOLE
    return None


def stop(spec: ServerProcessSpec, log: Log = None) -> StopOutcome:
    """Graceful chain: "stop" (RCON or console) and wait up to ``stop_timeout``,
    then SIGTERM and wait up to min(stop_timeout, 10 s), then SIGKILL."""
    started = time.monotonic()
    proc = find_process(spec)
    if proc is None:
        _emit(log, "The server is not running: nothing to stop.")
        return StopOutcome(StopStep.NOT_RUNNING, was_running=False, pid=None, elapsed_seconds=0.0)

    def done(step: StopStep) -> StopOutcome:
        spec.pid = spec.pid_create_time = None
        elapsed = time.monotonic() - started
        _emit(log, f"The server (pid {proc.pid}) stopped after {elapsed:.1f} s ({step.value}).")
        return StopOutcome(step, was_running=True, pid=proc.pid, elapsed_seconds=elapsed)

    _emit(log, f"Stopping the server (pid {proc.pid}).")
    asked = _ask_to_stop(spec, log)
    if asked is not None:
        if _wait_gone(proc, spec.stop_timeout):
            return done(asked)
        _emit(log, f"Still running {spec.stop_timeout:g} s after 'stop': sending SIGTERM.")
    else:
        _emit(log, "No RCON or console to send 'stop' to: sending SIGTERM.")
    _signal(proc, signal.SIGTERM)
    term_wait = min(spec.stop_timeout, SIGTERM_WAIT_MAX)
    if _wait_gone(proc, term_wait):
        return done(StopStep.SIGTERM)
    _emit(log, f"Still running {term_wait:g} s after SIGTERM: sending SIGKILL.")
    _signal(proc, signal.SIGKILL)
    if _wait_gone(proc, SIGKILL_WAIT):
        return done(StopStep.SIGKILL)
    raise ServerControlError(f"The server (pid {proc.pid}) is still running after SIGKILL.")


def restart(spec: ServerProcessSpec, log: Log = None) -> ProcessStatus:
    stop(spec, log)
    return start(spec, log)
