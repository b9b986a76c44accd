"""Backup consistency (SPEC §5.3), as two context managers the backup
service wraps around the archive step:

- ``stopped_for_backup``: stop gracefully, archive, start again if it was
  running — also when the archive step raised;
- ``live_save_paused``: RCON ``save-off`` and ``save-all flush`` (waiting for
  the server's "Saved the game"), archive, ``save-on`` always.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from collections.abc import Callable, Iterator

from servers.control import (
    Log,
    ProcessStatus,
    ServerControlError,
    ServerProcessSpec,
    StopOutcome,
    _emit,
    find_process,
    start,
    status,
    stop,
)
from servers.rcon import RconClient, RconError

@dataclass
class StoppedForBackup:
    was_running: bool
    stop_outcome: StopOutcome
    restarted_status: ProcessStatus | None = None  # set on exit when it was started again


@contextlib.contextmanager
def stopped_for_backup(
    spec: ServerProcessSpec, log: Log = None, on_started: Callable[[ProcessStatus], None] | None = None
) -> Iterator[StoppedForBackup]:
    """Stop the server (if running) for the body, then start it again — also
    when the body raised. A failed restart raises ServerControlError, chained
    after the body's error (both show in the traceback)."""
    outcome = stop(spec, log)
    state = StoppedForBackup(was_running=outcome.was_running, stop_outcome=outcome)
    if not state.was_running:
        _emit(log, "The server was not running; it will not be started after the backup.")
    try:
        yield state
    except BaseException as body_error:
        _start_after_backup(spec, log, state, on_started, body_error)
        raise
    _start_after_backup(spec, log, state, on_started, None)


def _start_after_backup(spec, log, state: StoppedForBackup, on_started, body_error) -> None:
    if not state.was_running:
        return
    try:
        if find_process(spec) is not None:
            _emit(log, "The server is already running again (started by someone else).")
            state.restarted_status = status(spec)
        else:
            state.restarted_status = start(spec, log)
    except Exception as exc:  # noqa: BLE001 — whatever broke the start, report it with the backup's error
        also = f" The backup itself had failed too: {body_error!r}." if body_error is not None else ""
        raise ServerControlError(
            f"The server was stopped for the backup and could not be started again: {exc}.{also}"
        )
    if on_started is not None:
        on_started(state.restarted_status)


@dataclass
class LiveSavePause:
    was_running: bool
    paused: bool  # saving was turned off and flushed for the body
    flush_reply: str | None = None


SAVED_MARKER = "saved the game"


@contextlib.contextmanager
def live_save_paused(
    spec: ServerProcessSpec, log: Log = None, timeout: float = 120.0
) -> Iterator[LiveSavePause]:
    """``save-off`` + ``save-all flush`` (waiting for "Saved the game"), the body,
    then ``save-on`` ALWAYS. A stopped server is yielded as is: nothing writes it."""
    if find_process(spec) is None:
        _emit(log, "The server is not running: nothing writes the world, no need to pause saving.")
        yield LiveSavePause(was_running=False, paused=False)
        return
    if not spec.rcon_password:
        raise ServerControlError("A live backup needs RCON: set an RCON password for this server.")
    rcon = RconClient(spec.rcon_host, spec.rcon_port, spec.rcon_password, timeout=min(10.0, timeout))
    try:
        rcon.connect()
    except RconError as exc:
        raise ServerControlError(f"Cannot pause world saving for a live backup: {exc}") from exc
    body_error: BaseException | None = None
    try:
        try:
            _emit(log, f"save-off: {rcon.command('save-off').strip()}")
            reply = rcon.command("save-all flush", timeout=timeout)
        except RconError as exc:
            raise ServerControlError(f"Could not pause and flush world saving: {exc}") from exc
        _emit(log, f"save-all flush: {reply.strip()}")
        if SAVED_MARKER not in reply.lower():
            raise ServerControlError(f"The server did not confirm the save (answered {reply.strip()!r}).")
        yield LiveSavePause(was_running=True, paused=True, flush_reply=reply)
    except BaseException as exc:
        body_error = exc
        raise
    finally:
        try:
            _emit(log, f"save-on: {rcon.command('save-on').strip()}")
        except RconError as exc:
            also = f" (after: {body_error!r})" if body_error is not None else ""
            # No "from": the chain keeps the body's error visible in the traceback.
            raise ServerControlError(f"Could not turn world saving back on (save-on): {exc}{also}")
        finally:
            rcon.close()
