"""Off-site copies (issue #13, SPEC §13): every verified backup is also
streamed to the storage targets its server's copy policy names, checked
there, and removed from them when the backup goes.

    backup verified ──> copies_queue ──> copy_run (on the server's node) ──> verified
                        one OffsiteCopy   claim pending|failed → copying,        │
                        per target        abort what a crashed try left,         │
                        (pending)         upload, verify, sidecar                ▼
                                          transient fault: pending again,  failed (+ event,
                                          re-sent with backoff (≤ 5 tries)  one alert per target)

* **Policy**: a server's ServerCopyPolicy (custom targets, or none); no row
  or mode "default": every enabled target marked is_default. Disabled
  targets never receive copies.
* **One runner**: the claim is a conditional update; a redelivered task finds
  nothing to do. A heartbeat thread keeps ``heartbeat_at`` fresh; the reaper
  (``reap_stale_copies``) puts copies whose worker died back to pending,
  after aborting the unfinished upload they left (S3 multipart uploads are
  billed until aborted), and sends them again.
* **Retention**: a deleted backup's copies get ``delete_after`` (now + the
  target's delete delay, + its extra retention when the backup aged out);
  ``copies_sweep`` deletes archive and sidecar when due, never before an S3
  Object Lock ends. Emergency cleanup drops only the local file of a backup
  whose copy is verified (``drop_local_file``); it never deletes a copy.
* **Re-check**: ``copies_recheck_sweep`` reads a rotating sample of verified
  copies back (BackupSettings.recheck_days / recheck_batch) and alerts on a
  mismatch.

No service imports backups.tasks: tasks are sent by name (lifecycle)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from backups import events, storage
from backups.alerts import alert_open, alert_resolve
from backups.models import BackupRecord, BackupSettings, OffsiteCopy, ServerCopyPolicy, StorageTarget
from backups.offsite import OffsiteError, open_target
from backups.offsite_layout import remote_name, sidecar_bytes, sidecar_document, sidecar_name
from backups.services import files, lifecycle
from servers import nodes

logger = logging.getLogger("mcsite.backups")

MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 60          # 1, 2, 4, 8 minutes between tries
HEARTBEAT_SECONDS = 15
COPY_TASK = "copy_backup_offsite"
RECHECK_TASK = "recheck_offsite_copy"
ALERT_KIND = "offsite_copy_failed"
LOCAL_FILE_MISSING = "LOCAL_FILE_MISSING"
BACKUP_CHANGED = "BACKUP_CHANGED"
S = OffsiteCopy.Status


def target_subject(target) -> str:
    return f"target:{target.pk}"


# --- which targets ------------------------------------------------------------------

def copy_targets_for(server) -> list[StorageTarget]:
    """The enabled targets that get copies of the server's backups."""
    policy = ServerCopyPolicy.objects.filter(server=server).first() if server is not None else None
    if policy is not None and policy.mode == ServerCopyPolicy.Mode.NONE:
        return []
    if policy is not None and policy.mode == ServerCopyPolicy.Mode.CUSTOM:
        return list(policy.targets.filter(enabled=True).order_by("name"))
    return list(StorageTarget.objects.filter(enabled=True, is_default=True).order_by("name"))


def copies_queue(record: BackupRecord) -> list[OffsiteCopy]:
    """After the backup verified: one pending copy per target of its
    server's policy, each sent to the server's node once committed. Safety
    backups (a restore's rollback point) are not copied."""
    if record.trigger == BackupRecord.Trigger.SAFETY or record.server_id is None or record.snapshot_id:
        return []  # a snapshot is in its repository, on the storage target the user chose (issue #14)
    if record.status != BackupRecord.Status.SUCCEEDED or not record.verification_passed:
        return []
    created = []
    for target in copy_targets_for(record.server):
        copy, new = OffsiteCopy.objects.get_or_create(backup=record, target=target)
        if new:
            created.append(copy)
    node = storage.node_of(record)
    for copy in created:
        _send_after_commit(copy.pk, node)
    return created


def _send_after_commit(copy_id: int, queue: str, countdown: float | None = None) -> None:
    def send():
        try:
            lifecycle.send_task(COPY_TASK, kwargs={"copy_id": copy_id}, queue=queue, countdown=countdown)
        except Exception as exc:  # noqa: BLE001 — the reaper's retry sweep sends pending copies again
            logger.error("offsite_enqueue_failed copy_id=%s queue=%s error=%s", copy_id, queue, type(exc).__name__)

    transaction.on_commit(send)


# --- the copy run ---------------------------------------------------------------------

def _claim(copy_id: int, task_id: str) -> bool:
    now = timezone.now()
    return bool(OffsiteCopy.objects.filter(pk=copy_id, status__in=[S.PENDING, S.FAILED]).update(
        status=S.COPYING, started_at=now, heartbeat_at=now, finished_at=None, task_id=(task_id or "")[:64],
        attempts=F("attempts") + 1))


class _Heartbeat:
    """Keeps heartbeat_at fresh while the copy is copying (a long SFTP read-back)."""

    def __init__(self, copy_id: int):
        self.copy_id = copy_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-copy-{copy_id}", daemon=True)

    def _beat(self):
        from django.db import connection

        try:
            while not self.stop.wait(HEARTBEAT_SECONDS):
                try:
                    OffsiteCopy.objects.filter(pk=self.copy_id, status=S.COPYING).update(heartbeat_at=timezone.now())
                except Exception as exc:  # noqa: BLE001
                    logger.warning("heartbeat_failed offsite_copy=%s error=%s", self.copy_id, exc)
                    connection.close()
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)


def _save_state(copy_id: int):
    def on_state(state):
        OffsiteCopy.objects.filter(pk=copy_id).update(upload_state=state, heartbeat_at=timezone.now())
    return on_state


def copy_run(*, copy_id: int, task_id: str = "") -> OffsiteCopy | None:
    """The task's entry: copy one backup to one target, as the worker of the
    backup's node. Returns the copy as recorded (None when there is none)."""
    copy = OffsiteCopy.objects.select_related("backup", "backup__server", "target").filter(pk=copy_id).first()
    if copy is None:
        return None
    record, target = copy.backup, copy.target
    if record.status != BackupRecord.Status.SUCCEEDED or copy.delete_after is not None:
        return copy  # deleted since it was queued: the sweep removes what is left
    if not _claim(copy.pk, task_id):
        return copy  # another runner has it, or it is done
    copy.refresh_from_db()
    try:
        if not target.enabled:
            raise OffsiteError("TARGET_DISABLED", f"The target {target.name} is disabled")
        path = _local_file(record)
        directory = record.server.directory if record.server_id else record.server_directory
        name = remote_name(directory=directory, filename=record.filename)
        OffsiteCopy.objects.filter(pk=copy.pk).update(remote_name=name)
        with _Heartbeat(copy.pk), open_target(target.config()) as remote:
            if copy.upload_state:
                remote.abort_incomplete(copy.upload_state)
                OffsiteCopy.objects.filter(pk=copy.pk).update(upload_state=None)
            lock_days = target.object_lock_days if target.kind == StorageTarget.Kind.S3 and target.object_lock_days else None
            result = remote.upload(path, name, on_state=_save_state(copy.pk), object_lock_days=lock_days)
            if record.sha256 and result.sha256 != record.sha256:
                remote.delete(name)
                raise OffsiteError(BACKUP_CHANGED, "The local backup file changed since it was verified "
                                   "(its SHA-256 differs); the copy was removed")
            OffsiteCopy.objects.filter(pk=copy.pk).update(
                status=S.COPIED, size_bytes=result.size, sha256=result.sha256, part_size=result.part_size,
                composite_checksum=result.composite or "", lock_until=result.lock_until, upload_state=None,
                heartbeat_at=timezone.now())
            remote.verify(name, size=result.size, sha256=result.sha256, part_size=result.part_size,
                          composite=result.composite, local_path=path)
            server = record.server
            document = sidecar_document(record, server_name=server.name if server else "",
                                        server_directory=directory, mcsite_version=nodes.mcsite_version())
            remote.put_small(sidecar_name(name), sidecar_bytes(document))
    except OffsiteError as exc:
        return _copy_failed(copy, exc)
    except Exception as exc:  # noqa: BLE001 — whatever broke, the copy says so and the backup is untouched
        logger.error("offsite_copy_internal_error copy_id=%s", copy.pk, exc_info=exc)
        return _copy_failed(copy, OffsiteError("INTERNAL_ERROR", f"Unexpected error: {type(exc).__name__}: {exc}"))
    now = timezone.now()
    OffsiteCopy.objects.filter(pk=copy.pk, status=S.COPIED).update(
        status=S.VERIFIED, verified_at=now, finished_at=now, heartbeat_at=now, error_code="", error_message="")
    copy.refresh_from_db()
    events.log_event("offsite_copy_verified", server=record.server, backup=record, target=target.name,
                     size=copy.size_bytes)
    alert_resolve(kind=ALERT_KIND, subject=target_subject(target))
    return copy


def _local_file(record: BackupRecord):
    if record.local_removed_at is not None or not storage.file_present(record):
        raise OffsiteError(LOCAL_FILE_MISSING, f"The backup's local file {record.filename} is missing; "
                           "there is nothing to copy")
    return storage.absolute_path(record.storage_path)


def _copy_failed(copy: OffsiteCopy, exc: OffsiteError) -> OffsiteCopy:
    now = timezone.now()
    state = getattr(exc, "state", None)
    fields = dict(error_code=str(exc.code)[:40], heartbeat_at=now)
    if state is not None:
        fields["upload_state"] = state
    copy.refresh_from_db()
    record, target = copy.backup, copy.target
    if getattr(exc, "transient", False) and copy.attempts < MAX_ATTEMPTS:
        countdown = BACKOFF_SECONDS * 2 ** (copy.attempts - 1)
        message = (f"{exc.message} (try {copy.attempts} of {MAX_ATTEMPTS}; trying again in "
                   f"{countdown // 60} min)")
        if OffsiteCopy.objects.filter(pk=copy.pk, status__in=[S.COPYING, S.COPIED]).update(
                status=S.PENDING, error_message=message, **fields):
            queue = storage.node_of(record)
            _send_after_commit(copy.pk, queue, countdown=countdown)
        copy.refresh_from_db()
        return copy
    message = exc.message if not getattr(exc, "transient", False) else \
        f"{exc.message} (gave up after {copy.attempts} tries)"
    if not OffsiteCopy.objects.filter(pk=copy.pk, status__in=[S.COPYING, S.COPIED]).update(
            status=S.FAILED, error_message=message, finished_at=now, **fields):
        copy.refresh_from_db()
        return copy
    copy.refresh_from_db()
    events.log_event("offsite_copy_failed", server=record.server, backup=record, target=target.name,
                     code=copy.error_code, error=message)
    alert_open(kind=ALERT_KIND, subject=target_subject(target), title=f"Off-site copy to {target.name} failed",
               body=f"{record.filename}: {copy.error_code}: {message}")
    return copy


def copy_retry(copy: OffsiteCopy) -> bool:
    """A failed copy tried again now (admin action); False unless it had failed."""
    if not OffsiteCopy.objects.filter(pk=copy.pk, status=S.FAILED).update(attempts=0):
        return False
    queue = storage.node_of(copy.backup)
    _send_after_commit(copy.pk, queue)
    return True


# --- the reaper -------------------------------------------------------------------------

def reap_stale_copies(*, now=None) -> int:
    """Copies whose worker stopped beating: what their upload left is
    aborted (best effort; the next run aborts it too), then they are put back
    to pending and sent again. Returns how many."""
    now = now or timezone.now()
    cutoff = now - lifecycle.stale_cutoff()
    reaped = 0
    for copy in OffsiteCopy.objects.filter(status__in=[S.COPYING, S.COPIED], heartbeat_at__lt=cutoff
                                           ).select_related("target", "backup__server"):
        if copy.upload_state and copy.target.kind != StorageTarget.Kind.LOCAL:  # a local folder is the node's
            try:
                with open_target(copy.target.config()) as remote:
                    remote.abort_incomplete(copy.upload_state)
                copy.upload_state = None
            except OffsiteError as exc:
                logger.warning("offsite_abort_failed copy_id=%s code=%s", copy.pk, exc.code)
        if not OffsiteCopy.objects.filter(pk=copy.pk, status=copy.status, heartbeat_at__lt=cutoff).update(
                status=S.PENDING, upload_state=copy.upload_state, heartbeat_at=now, error_code="WORKER_LOST",
                error_message="The worker copying this backup stopped (killed or crashed); copying again"):
            continue
        reaped += 1
        record = copy.backup
        _send_after_commit(copy.pk, storage.node_of(record))
    return reaped


# --- retention on targets ------------------------------------------------------------------

def copies_schedule_delete(record: BackupRecord, *, by_age: bool, now=None) -> int:
    """The backup is deleted: its copies go after the target's delete delay
    (and, when it aged out, the target's extra retention)."""
    now = now or timezone.now()
    scheduled = 0
    for copy in OffsiteCopy.objects.filter(backup=record, deleted_at__isnull=True, delete_after__isnull=True
                                           ).select_related("target"):
        days = copy.target.delete_delay_days + (copy.target.extra_retention_days if by_age else 0)
        scheduled += OffsiteCopy.objects.filter(pk=copy.pk).update(delete_after=now + timedelta(days=days))
    return scheduled


def has_verified_copy(record: BackupRecord) -> bool:
    return OffsiteCopy.objects.filter(backup=record, status=S.VERIFIED, delete_after__isnull=True).exists()


def drop_local_file(record: BackupRecord, *, reason: str = "emergency") -> bool:
    """Emergency cleanup: removes only the local file of a backup with a
    verified copy; the record stays succeeded and restorable from the copy.
    True when the backup is (now) kept by its copy alone."""
    if not has_verified_copy(record):
        return False
    if record.local_removed_at is not None:
        return True  # dropped by an earlier sweep: the copy keeps it
    record.local_removed_at = timezone.now()
    BackupRecord.objects.filter(pk=record.pk).update(local_removed_at=record.local_removed_at)
    files.remove_on_its_node(record)  # the record says so first: another node checks it before removing
    events.log_event("local_file_dropped", server=record.server, backup=record, reason=reason)
    return True


def copies_sweep(*, now=None) -> dict:
    """Deletes the archive and sidecar of every copy whose delete_after has
    come (not before its Object Lock ends; a refused delete is tried again
    by the next sweep)."""
    now = now or timezone.now()
    done = {"deleted": 0, "waiting_for_lock": 0, "errors": 0}
    due = (OffsiteCopy.objects.filter(delete_after__lte=now, deleted_at__isnull=True)
           .exclude(status=S.COPYING).select_related("target").order_by("target_id", "pk"))
    by_target: dict[int, list] = {}
    for copy in due:
        if copy.lock_until and copy.lock_until > now:
            done["waiting_for_lock"] += 1
            continue
        by_target.setdefault(copy.target_id, []).append(copy)
    for copies in by_target.values():
        target = copies[0].target
        try:
            with open_target(target.config()) as remote:
                for copy in copies:
                    try:
                        if copy.upload_state:
                            remote.abort_incomplete(copy.upload_state)
                        if copy.remote_name:
                            remote.delete(copy.remote_name)
                            remote.delete(sidecar_name(copy.remote_name))
                    except OffsiteError as exc:
                        done["errors"] += 1
                        logger.warning("offsite_delete_failed copy_id=%s code=%s", copy.pk, exc.code)
                        OffsiteCopy.objects.filter(pk=copy.pk).update(error_code=exc.code[:40],
                                                                      error_message=f"Delete: {exc.message}")
                        continue
                    OffsiteCopy.objects.filter(pk=copy.pk).update(status=S.DELETED, deleted_at=timezone.now(),
                                                                  upload_state=None)
                    done["deleted"] += 1
        except OffsiteError as exc:
            done["errors"] += len(copies)
            logger.warning("offsite_sweep_failed target=%s code=%s", target.name, exc.code)
    return done


# --- re-check --------------------------------------------------------------------------------

def recheck_copy_candidates(*, now=None, config: BackupSettings | None = None):
    config = config or BackupSettings.load()
    if not config.recheck_days:
        return OffsiteCopy.objects.none()
    cutoff = (now or timezone.now()) - timedelta(days=config.recheck_days)
    return (OffsiteCopy.objects.filter(status=S.VERIFIED, delete_after__isnull=True, target__enabled=True)
            .annotate(last_check=Coalesce("rechecked_at", "verified_at"))
            .filter(last_check__lt=cutoff).select_related("backup__server")
            .order_by(F("last_check").asc(), "pk")[:config.recheck_batch])


def copies_recheck_sweep(*, now=None) -> list[int]:
    sent = []
    for copy in recheck_copy_candidates(now=now):
        record = copy.backup
        queue = storage.node_of(record)
        try:
            lifecycle.send_task(RECHECK_TASK, kwargs={"copy_id": copy.pk}, queue=queue)
        except Exception as exc:  # noqa: BLE001
            logger.error("offsite_recheck_enqueue_failed copy_id=%s error=%s", copy.pk, type(exc).__name__)
            continue
        sent.append(copy.pk)
    return sent


def copy_recheck(*, copy_id: int) -> OffsiteCopy | None:
    """Reads a verified copy back (S3 too) and compares it with what was
    recorded; a mismatch or a missing copy alerts (once per copy)."""
    copy = OffsiteCopy.objects.select_related("backup__server", "target").filter(
        pk=copy_id, status=S.VERIFIED).first()
    if copy is None:
        return None
    try:
        with open_target(copy.target.config()) as remote:
            remote.verify(copy.remote_name, size=copy.size_bytes, sha256=copy.sha256, part_size=copy.part_size,
                          composite=copy.composite_checksum or None, read_back=True)
    except OffsiteError as exc:
        OffsiteCopy.objects.filter(pk=copy.pk).update(rechecked_at=timezone.now())
        if exc.transient:
            logger.warning("offsite_recheck_unreachable copy_id=%s code=%s", copy.pk, exc.code)
            return copy
        OffsiteCopy.objects.filter(pk=copy.pk).update(status=S.FAILED, error_code=exc.code[:40],
                                                      error_message=f"Re-check: {exc.message}")
        events.log_event("offsite_copy_failed", server=copy.backup.server, backup=copy.backup,
                         target=copy.target.name, code=exc.code, error=f"re-check: {exc.message}")
        alert_open(kind=ALERT_KIND, subject=target_subject(copy.target),
                   title=f"Off-site copy on {copy.target.name} no longer matches",
                   body=f"{copy.backup.filename}: {exc.code}: {exc.message}")
        copy.refresh_from_db()
        return copy
    OffsiteCopy.objects.filter(pk=copy.pk).update(rechecked_at=timezone.now())
    copy.refresh_from_db()
    return copy
