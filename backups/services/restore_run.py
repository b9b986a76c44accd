"""The staged restore run and its crash recovery (SPEC §7).

Check room, stop the server, take the safety backup (the ordinary backup
pipeline), extract to a staging folder beside the server folder, swap by
two renames (the engine's ``swap_into_place``), check, start, commit, then
delete the previous folder.

A partial restore (``paths``) extracts only the chosen paths, then links
everything else of the current folder into the staging folder
(``engine.carry_rest``), so the swap and everything after it are the same.
A copy (kind ``copy``) goes into a new server's empty folder: no stop, no
safety backup.

Every name is recorded in ``RestoreRequest.steps`` before it matters: the
staging folder as soon as it exists, and each rename before it happens. So
the one function ``recover_folder`` can put things right from the steps
alone — after a failure in this run, or for the reaper after the worker was
killed at any point: before ``committed`` the previous folder goes back
(and whatever unchecked folder stood in its place is removed); after it the
restored folder is kept and the previous one removed. Either way no
``.<name>.*`` sibling is left behind.
"""

import logging
import os
import shutil
import stat
from pathlib import Path

from django.utils import timezone

from backups import engine, events
from backups.alerts import alert_open, owner_emails, server_subject
from backups.models import BackupRecord, RestoreRequest
from backups.services import config as config_service
from backups.services import copy_source, lifecycle
from backups.services.prechecks import restore_precheck
from backups.services.restores import require_intact
from backups.services.runs import backup_safety_take
from mcsite.errors import DomainError, ErrorCode
from servers import control
from servers.models import Server

logger = logging.getLogger("mcsite.backups")

PUT_BACK, KEPT, UNTOUCHED, REMOVED = "put_back", "kept_restored", "untouched", "removed_new"
_TOLD = {PUT_BACK: "the previous files were put back",
         KEPT: "the restored files are in place",
         UNTOUCHED: "nothing in the server folder had been changed",
         REMOVED: "the restored files were removed (there was no server folder before)"}


def restore_run(*, restore_id: int, task_id: str = "", observer=None) -> RestoreRequest | None:
    if not lifecycle.claim(RestoreRequest, restore_id, task_id=task_id, phase="checking"):
        return None
    restore = RestoreRequest.objects.select_related("server", "backup", "rollback_of").get(pk=restore_id)
    events.log_event("restore_started", server=restore.server, backup=restore.backup, restore_id=restore.pk,
                     kind=restore.kind)
    with lifecycle.heartbeat(RestoreRequest, restore.pk):
        _Run(restore, observer).execute()
    restore.refresh_from_db()
    return restore


class _Run:
    def __init__(self, restore: RestoreRequest, observer=None):
        self.restore = restore
        self.observer = observer
        self.server = restore.server
        self.target = self.server.path
        self.was_running = False

    def step(self, name: str, **info) -> None:
        """Recorded in the database before the step's effect can matter."""
        entry = {"step": name, "at": timezone.now().isoformat(), **info}
        self.restore.steps = [*self.restore.steps, entry]
        RestoreRequest.objects.filter(pk=self.restore.pk).update(steps=self.restore.steps, phase=name[:20])
        lifecycle.notify(self.observer, phase=name)

    def execute(self) -> None:
        try:
            self._execute()
        except BaseException as exc:  # noqa: BLE001 — every way out must leave the old files in place
            outcome = repair(self.server, self.restore.steps, log_step=self.step, log=self._log)
            start_again(self.server, self.was_running, log=self._log)
            self._fail(exc, outcome)
            if not isinstance(exc, Exception):
                raise

    def _execute(self) -> None:
        backup = self.restore.backup
        # The local file, or a verified off-site copy streamed into the staging folder.
        source = copy_source.source_for(backup) if backup is not None else None
        if source is None:
            raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
        require_intact(backup, self.server)
        copy = self.restore.kind == RestoreRequest.Kind.COPY  # a new server's empty folder: nothing to stop or keep
        restore_precheck(server=self.server, backup=backup, safety_backup=not copy)
        if not copy:
            self._stop()

        if self.target.exists() and not copy:  # a rollback too: what was played since the restore can be got back
            self.step("safety_backup")
            safety = backup_safety_take(server=self.server, observer=self.observer)
            if safety is None or safety.status != BackupRecord.Status.SUCCEEDED:
                code = ErrorCode(safety.error_code) if safety and safety.error_code else ErrorCode.RESTORE_FAILED
                raise DomainError(code, f"The safety backup could not be taken ({safety.error_message if safety else 'not run'})")
            self.restore.safety_backup = safety
            RestoreRequest.objects.filter(pk=self.restore.pk).update(safety_backup=safety)
            self.step("safety_backup_taken", backup_id=safety.pk, filename=safety.filename)

        self.step("extracting", **({} if source.is_local else {"from_target": source.copy.target.name}))
        progress = lifecycle.progress_writer(RestoreRequest, self.restore.pk, self.observer)
        chosen = list(self.restore.paths or ())
        result = copy_source.extract(
            source, self.target, keyring=config_service.decryption_keyring(),
            progress=lifecycle.checkpoint_once_moving(progress, "restore_mid_extract"),
            on_staging=lambda path: self.step("staging", folder=os.path.basename(path)), only=chosen or None,
        )
        staging = Path(result.staging_dir)
        self.step("extracted", file_count=result.file_count)
        RestoreRequest.objects.filter(pk=self.restore.pk).update(file_count=result.file_count)

        if self.target.exists():
            _copy_folder_identity(self.target, staging)
            if chosen:  # a partial restore: the staged folder becomes the current one with the chosen paths replaced
                kept = engine.carry_rest(self.target, staging, chosen)
                self.step("kept_rest", files=kept.files, links=kept.links, dropped=kept.dropped[:50])
                lifecycle.checkpoint("restore_partial_carried")
            if self.restore.keep_excluded:
                carried = engine.carry_excluded(self.target, staging, self.server.exclude_patterns or ())
                self.step("kept_excluded", paths=carried[:50], count=len(carried))
        engine.swap_into_place(staging, self.target, before_rename=self._before_rename, label="pre-restore")
        lifecycle.checkpoint("restore_swapped")
        self.step("swapped")
        check_restored_folder(self.target, result)
        if self.was_running:
            status = control.start(self.server.process_spec(), self._log)
            Server.objects.filter(pk=self.server.pk).update(pid=status.pid, pid_create_time=status.create_time)
            self.step("started", pid=status.pid)
        # From here on the restored folder is the server's: a crash while the
        # old folder is removed must not bring the old one back half-deleted.
        self.step("committed")
        lifecycle.checkpoint("restore_committed")
        recover_folder(self.target, self.restore.steps)  # removes the previous folder
        self._succeed()

    def _stop(self) -> None:
        spec = self.server.process_spec()
        # Intent first, so a worker that dies while stopping still gets the server started again.
        self.was_running = control.find_process(spec) is not None
        RestoreRequest.objects.filter(pk=self.restore.pk).update(server_was_running=self.was_running)
        outcome = control.stop(spec, self._log)
        self.was_running = self.was_running or outcome.was_running
        RestoreRequest.objects.filter(pk=self.restore.pk).update(server_was_running=self.was_running)
        self.step("stopped", was_running=self.was_running)

    def _before_rename(self, source: str, destination: str) -> None:
        self.step("rename", source=os.path.basename(source), destination=os.path.basename(destination))
        if destination == str(self.target):
            lifecycle.checkpoint("restore_between_renames")

    def _succeed(self) -> None:
        lifecycle.end(self.restore, status=RestoreRequest.Status.SUCCEEDED)
        finish_rollback_of(self.restore)
        events.log_event("restore_succeeded", server=self.server, backup=self.restore.backup,
                         restore_id=self.restore.pk, kind=self.restore.kind)

    def _fail(self, exc: BaseException, outcome: str) -> None:
        code, message = lifecycle.classify(exc, restore=True)
        if code == ErrorCode.INTERNAL_ERROR:
            logger.error("restore_internal_error restore_id=%s", self.restore.pk, exc_info=exc)
        message = f"{message.rstrip('.')}. {_TOLD[outcome].capitalize()}."
        if not lifecycle.end(self.restore, status=RestoreRequest.Status.FAILED, code=code, message=message):
            return
        events.log_event("restore_failed", server=self.server, backup=self.restore.backup,
                         restore_id=self.restore.pk, code=code.value, error=message)
        alert_open(kind="restore_failed", subject=f"restore:{self.restore.pk}",
                   title=f"Restore of {self.server.name} failed", body=f"{code.value}: {message}",
                   recipients_extra=owner_emails(self.server))

    def _log(self, message: str) -> None:
        logger.info("server_control server_id=%s restore_id=%s %s", self.server.pk, self.restore.pk, message)


def repair(server: Server, steps: list, *, log_step, log) -> str:
    """recover_folder for a server: one started on restored files that were
    never committed is stopped first, so the old folder goes back under a
    stopped server (and is started again by the caller)."""
    names = {e.get("step") for e in steps}
    if "started" in names and "committed" not in names:
        control.stop(server.process_spec(), log)
    return recover_folder(server.path, steps, log=log_step)


def recover_folder(target: Path, steps: list, log=None) -> str:
    """Puts the server folder right from the recorded steps; returns what it did.

    Before ``committed``: the folder moved aside (if it was) goes back, and
    whatever stands in its place (a restored folder nobody checked) is
    removed. After ``committed``: the restored folder stays and the previous
    one is removed. Staging folders are removed in both cases. ``log(step,
    **info)`` records this function's own renames first, so a crash in the
    middle of a recovery is recovered in turn. Running it twice is harmless."""
    parent = target.parent
    committed = any(e.get("step") == "committed" for e in steps)
    renames = [(e["source"], e["destination"]) for e in steps if e.get("step") == "rename"]
    aside = [dst for src, dst in renames if src == target.name and ".pre-restore-" in dst]
    previous = parent / aside[0] if aside else None
    staging = {e["folder"] for e in steps if e.get("step") == "staging"}
    staged_in = any(src in staging and dst == target.name for src, dst in renames)
    leftovers = [parent / name for name in staging]
    leftovers += [parent / dst for _, dst in renames if ".failed-restore-" in dst]
    if committed:
        outcome = KEPT
        if previous is not None:
            leftovers.append(previous)
    elif previous is not None and previous.exists():
        moved = engine.rollback_swap(target, previous, before_rename=_logged(log))
        if moved:
            leftovers.append(Path(moved))
        outcome = PUT_BACK
    elif previous is not None and (previous.name, target.name) in renames:
        outcome = PUT_BACK  # an earlier recovery already put it back
    elif previous is None and staged_in and target.exists():
        # There was no server folder: what stands there now is the unchecked restore.
        leftovers.append(Path(engine.rollback_swap(target, None, before_rename=_logged(log))))
        outcome = REMOVED
    else:
        outcome = UNTOUCHED
    for folder in leftovers:
        if folder != target:
            shutil.rmtree(folder, ignore_errors=True)
    return outcome


def _logged(log):
    if log is None:
        return None
    return lambda source, destination: log("rename", source=os.path.basename(source),
                                           destination=os.path.basename(destination))


def start_again(server: Server, was_running: bool, *, log) -> None:
    """A server the restore stopped is started again, whatever happened."""
    if not was_running:
        return
    try:
        if control.find_process(server.process_spec()) is None:
            status = control.start(server.process_spec(), log)
            Server.objects.filter(pk=server.pk).update(pid=status.pid, pid_create_time=status.create_time)
    except Exception as exc:  # noqa: BLE001
        logger.error("server_restart_failed server_id=%s error=%s", server.pk, exc)
        alert_open(kind="server_down", subject=server_subject(server),
                   title=f"{server.name} could not be started after a restore", body=str(exc),
                   recipients_extra=owner_emails(server))


def finish_rollback_of(restore: RestoreRequest) -> None:
    if restore.kind == RestoreRequest.Kind.ROLLBACK and restore.rollback_of_id:
        RestoreRequest.objects.filter(pk=restore.rollback_of_id).update(status=RestoreRequest.Status.ROLLED_BACK)


def _copy_folder_identity(source: Path, dest: Path) -> None:
    """The staged folder takes the server folder's mode and owner, so the
    swap does not leave a private 0700 folder the server user cannot read."""
    info = source.stat()
    os.chmod(dest, stat.S_IMODE(info.st_mode))
    if os.geteuid() == 0:
        os.chown(dest, info.st_uid, info.st_gid)


def check_restored_folder(target: Path, result) -> None:
    """The last look before the server starts on the restored files: the
    folder holds what the extraction counted."""
    count = sum(len(files) for _, _, files in os.walk(target))
    if count < result.file_count:
        raise DomainError(ErrorCode.RESTORE_FAILED, f"Restored folder holds {count} files, expected {result.file_count}")


def restore_recover(*, restore_id: int, stale_before=None) -> bool:
    """For the reaper, on the server's node: a restore whose worker died.
    Claims the recovery (so it runs once), puts the folder right from the
    recorded steps, starts the server if the restore had stopped it, and
    records what really happened."""
    claim = RestoreRequest.objects.filter(pk=restore_id, status=RestoreRequest.Status.RUNNING)
    claim = claim.filter(heartbeat_at__lt=stale_before) if stale_before else claim.filter(phase="recovery_sent")
    if not claim.update(phase="recovering", heartbeat_at=timezone.now()):
        return False
    restore = RestoreRequest.objects.select_related("server", "backup").get(pk=restore_id)
    run = _Run(restore)
    # Beating while it works (stopping a server can take minutes), so the
    # reaper's next tick cannot take the same restore for a second recovery.
    with lifecycle.heartbeat(RestoreRequest, restore.pk):
        outcome = repair(restore.server, restore.steps, log_step=run.step, log=run._log)
        start_again(restore.server, bool(restore.server_was_running), log=run._log)
    if outcome == KEPT:
        lifecycle.end(restore, status=RestoreRequest.Status.SUCCEEDED)
        finish_rollback_of(restore)
        events.log_event("restore_succeeded", server=restore.server, backup=restore.backup, restore_id=restore.pk,
                         kind=restore.kind, note="worker_lost_after_commit")
        return True
    message = f"The worker running this restore stopped; {_TOLD[outcome]}"
    lifecycle.end(restore, status=RestoreRequest.Status.FAILED, code=ErrorCode.WORKER_LOST, message=message)
    events.log_event("restore_failed", server=restore.server, backup=restore.backup, restore_id=restore.pk,
                     code="WORKER_LOST", error=message)
    alert_open(kind="restore_failed", subject=f"restore:{restore.pk}", title=f"Restore of {restore.server.name} failed",
               body=f"WORKER_LOST: {message}", recipients_extra=owner_emails(restore.server))
    return True
