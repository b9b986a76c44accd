"""S3-compatible object storage (AWS S3, MinIO, Backblaze B2, Wasabi, Cloudflare R2).

Settings: ``bucket`` (required), ``endpoint_url`` (empty for AWS), ``region``
(default ``us-east-1``), ``prefix`` (a folder inside the bucket),
``addressing_style`` (``auto``, ``path`` — MinIO and most self-hosted services —
or ``virtual``), ``part_size_mib`` (default 16, at least 5), ``concurrency``
(parts in flight, default 4), ``max_attempts`` (botocore retries, default 5),
``object_lock_mode`` (``COMPLIANCE`` or ``GOVERNANCE``, for uploads asked to
lock). Secrets: ``access_key_id``, ``secret_access_key`` (both empty: boto3's
own chain — environment, instance role).

django-storages' ``S3Storage`` holds the connection and does what it does well
(exists, size, delete, open of a sidecar, signed URLs); its boto3 client does
the rest: a multipart upload with our part size and a SHA-256 per part, resume
from the parts already there, abort, ranged GETs, Object Lock retention.

An upload is always multipart (one part for a small file), so every copy has
S3's composite checksum ``base64(sha256(part digests)) + "-N"``, which
``verify`` compares with the same value computed from the local file.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from . import names
from .base import (SMALL_LIMIT, BoundedStream, RemoteEntry, Target, TargetConfig, UploadResult, VerifyResult,
                   _require)
from .checksums import (MIB, READ_CHUNK, FileWindow, b64, choose_part_size, composite_from_digests, file_digests,
                        part_ranges)
from .djangoconf import ensure_settings
from .errors import (AUTH_FAILED, BUCKET_NOT_FOUND, CHECKSUM_MISMATCH, INVALID_SETTING, LOCAL_ERROR, NO_SPACE,
                     NOT_FOUND, PERMISSION_DENIED, REMOTE_ERROR, SIZE_MISMATCH, TOO_LARGE, UNREACHABLE, OffsiteError)

_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
               "InvalidClientTokenId", "AuthorizationHeaderMalformed", "InvalidSecurity"}
_FULL_CODES = {"XMinioStorageFull", "QuotaExceeded", "StorageFull"}


_LOADER = None


def _shared_loader():
    """One botocore data loader for every target: each new session would
    otherwise parse S3's service description again (about half a second)."""
    global _LOADER
    if _LOADER is None:
        from botocore.loaders import create_loader
        _LOADER = create_loader()
    return _LOADER


def _storage_class():
    from storages.backends.s3 import S3Storage

    class SharedLoaderS3Storage(S3Storage):
        def _create_session(self):
            session = super()._create_session()
            session._session.register_component("data_loader", _shared_loader())
            return session

    return SharedLoaderS3Storage


class S3Target(Target):
    kind = "s3"

    def __init__(self, config: TargetConfig):
        super().__init__(config)
        settings = config.settings
        self.bucket = _require(settings, "bucket", "s3")
        self.prefix = str(settings.get("prefix") or "").strip("/")
        if self.prefix:
            names.check_prefix(self.prefix)
        self.key_prefix = f"{self.prefix}/" if self.prefix else ""
        style = settings.get("addressing_style") or "auto"
        if style not in ("auto", "path", "virtual"):
            raise OffsiteError(INVALID_SETTING, f"addressing_style must be auto, path or virtual, not {style!r}")
        try:
            self.part_size = int(settings.get("part_size_mib") or 16) * MIB
            self.concurrency = max(1, int(settings.get("concurrency") or 4))
            max_attempts = max(1, int(settings.get("max_attempts") or 5))
        except (TypeError, ValueError) as exc:
            raise OffsiteError(INVALID_SETTING, f"part_size_mib, concurrency and max_attempts are numbers ({exc})")
        if self.part_size < 5 * MIB:
            raise OffsiteError(INVALID_SETTING, "part_size_mib must be at least 5 (S3's smallest part)")
        self.lock_mode = settings.get("object_lock_mode") or "COMPLIANCE"
        if self.lock_mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise OffsiteError(INVALID_SETTING, "object_lock_mode must be COMPLIANCE or GOVERNANCE")
        ensure_settings()
        from botocore.config import Config

        client_config = Config(
            s3={"addressing_style": style}, signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=10, read_timeout=120, max_pool_connections=self.concurrency + 2,
            # We send our own SHA-256 per part; no second checksum of botocore's choosing.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        self.storage = _storage_class()(
            bucket_name=self.bucket, location=self.prefix,
            endpoint_url=settings.get("endpoint_url") or None, region_name=settings.get("region") or "us-east-1",
            access_key=config.secrets.get("access_key_id") or None,
            secret_key=config.secrets.get("secret_access_key") or None,
            client_config=client_config, verify=settings.get("verify_tls", True),
            file_overwrite=True, querystring_expire=300, default_acl=None,
        )
        self._client = None

    @property
    def client(self):
        """The boto3 client under django-storages' connection (thread-safe, shared by the part threads)."""
        if self._client is None:
            self._client = self.storage.connection.meta.client
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _key(self, remote_name: str) -> str:
        return self.key_prefix + names.check_name(remote_name)

    # -- errors ------------------------------------------------------------
    def _error(self, exc: Exception, what: str, *, missing: str = NOT_FOUND) -> OffsiteError:
        from botocore.exceptions import (ClientError, ConnectionClosedError, ConnectTimeoutError,
                                         EndpointConnectionError, NoCredentialsError, ReadTimeoutError)
        if isinstance(exc, OffsiteError):
            return exc
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            detail = error.get("Message") or code or f"HTTP {status}"
            if code in _AUTH_CODES:
                return OffsiteError(AUTH_FAILED, f"The S3 service refused the access key of target {self.name} "
                                    f"while {what}: {detail}")
            if code == "NoSuchBucket" or (missing == BUCKET_NOT_FOUND and status == 404):
                return OffsiteError(BUCKET_NOT_FOUND, f"The bucket {self.bucket!r} does not exist "
                                    f"(target {self.name})")
            if code in ("NoSuchKey", "NotFound", "404") or status == 404:
                return OffsiteError(missing, f"{what}: not found on target {self.name}")
            if code == "AccessDenied" or status == 403:
                return OffsiteError(PERMISSION_DENIED, f"The S3 service denied {what} on target {self.name}: "
                                    f"{detail} (check the key's permissions on bucket {self.bucket!r})")
            if code in _FULL_CODES:
                return OffsiteError(NO_SPACE, f"The S3 service is out of space while {what}: {detail}")
            return OffsiteError(REMOTE_ERROR, f"The S3 service failed {what}: {code} {detail}".strip())
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError, ReadTimeoutError)):
            return OffsiteError(UNREACHABLE, f"The S3 endpoint of target {self.name} is not reachable while "
                                f"{what} ({type(exc).__name__})")
        if isinstance(exc, FileNotFoundError):   # django-storages' answer for a missing key
            return OffsiteError(missing, f"{what}: not found on target {self.name}")
        if isinstance(exc, NoCredentialsError):
            return OffsiteError(AUTH_FAILED, f"Target {self.name} has no S3 credentials")
        return OffsiteError(REMOTE_ERROR, f"S3 failed while {what}: {type(exc).__name__}: {exc}")

    def _call(self, what: str, fn, *args, missing: str = NOT_FOUND, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # botocore raises many unrelated types; each is mapped to a code
            raise self._error(exc, what, missing=missing) from exc

    # -- connect and test ----------------------------------------------------
    def connect(self) -> None:
        self._call("listing the bucket", self.client.list_objects_v2, Bucket=self.bucket, Prefix=self.key_prefix,
                   MaxKeys=1, missing=BUCKET_NOT_FOUND)

    # -- upload ------------------------------------------------------------
    def upload(self, local_path, remote_name, *, progress=None, resume_state=None, on_state=None,
               object_lock_days=None) -> UploadResult:
        key = self._key(remote_name)
        try:
            size = os.stat(local_path).st_size
        except OSError as exc:
            raise OffsiteError(LOCAL_ERROR, f"Cannot read the local backup {local_path}: {exc.strerror}") from exc
        part_size = choose_part_size(size, self.part_size)
        upload_id, reused = None, {}
        rs = resume_state or {}
        if (rs.get("kind") == "s3" and rs.get("bucket") == self.bucket and rs.get("key") == key
                and rs.get("part_size") == part_size and rs.get("size") == size and rs.get("upload_id")):
            reused = self._uploaded_parts(key, rs["upload_id"])
            upload_id = rs["upload_id"] if reused is not None else None
            reused = reused or {}
        lock_until = None
        extra = {}
        if object_lock_days:
            lock_until = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=int(object_lock_days))).replace(
                microsecond=0)
            extra = {"ObjectLockMode": self.lock_mode, "ObjectLockRetainUntilDate": lock_until}
        if upload_id is None:
            created = self._call(f"starting the upload of {remote_name}", self.client.create_multipart_upload,
                                 Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", missing=BUCKET_NOT_FOUND,
                                 **extra)
            upload_id = created["UploadId"]
        state = {"kind": "s3", "bucket": self.bucket, "key": key, "upload_id": upload_id,
                 "part_size": part_size, "size": size}
        if on_state:
            on_state(state)
        try:
            sha256, digests, parts, kept = self._send_parts(local_path, key, upload_id, size, part_size, reused,
                                                            progress)
            done = self._call(f"completing the upload of {remote_name}", self.client.complete_multipart_upload,
                              Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
            if lock_until:
                self._ensure_lock(key, done.get("VersionId"), lock_until, remote_name)
        except OffsiteError as exc:
            exc.state = state
            raise
        if on_state:
            on_state(None)
        return UploadResult(remote_name=remote_name, size=size, sha256=sha256, part_size=part_size,
                            composite=composite_from_digests(digests), parts_reused=kept, lock_until=lock_until)

    def _uploaded_parts(self, key: str, upload_id: str) -> dict | None:
        """Parts already on S3 for a resumed upload, or None if the upload is gone."""
        from botocore.exceptions import ClientError
        found = {}
        try:
            for page in self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=key,
                                                                          UploadId=upload_id):
                for part in page.get("Parts", []):
                    found[part["PartNumber"]] = part
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return None
            raise self._error(exc, "listing the parts of an unfinished upload") from exc
        except Exception as exc:
            raise self._error(exc, "listing the parts of an unfinished upload") from exc
        return found

    def _send_part(self, local_path, key, upload_id, number, offset, length, digest) -> dict:
        with FileWindow(local_path, offset, length) as body:
            answer = self._call(f"uploading part {number}", self.client.upload_part, Bucket=self.bucket, Key=key,
                                UploadId=upload_id, PartNumber=number, Body=body, ContentLength=length,
                                ChecksumAlgorithm="SHA256", ChecksumSHA256=b64(digest))
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": b64(digest)}

    def _send_parts(self, local_path, key, upload_id, size, part_size, reused, progress):
        """Hash each part in order (and the whole file), send up to
        ``concurrency`` parts at once, each streamed from disk by its thread."""
        whole = hashlib.sha256()
        digests, parts = [], {}
        done_bytes, kept = 0, 0
        pending: dict = {}

        def collect(block: bool) -> None:
            nonlocal done_bytes
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED) if block else (
                [f for f in pending if f.done()], None)
            for future in finished:
                number, length = pending.pop(future)
                parts[number] = future.result()   # raises the part's OffsiteError
                done_bytes += length
                if progress:
                    progress(done_bytes, size)

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="offsite-s3") as pool:
            try:
                with open(local_path, "rb") as fh:
                    for number, offset, length in part_ranges(size, part_size):
                        old = reused.get(number)
                        # A listed part is matched by its SHA-256; a service that lists none (moto) by
                        # its ETag, which is the part's MD5 for unencrypted and SSE-S3 uploads.
                        md5 = hashlib.md5(usedforsecurity=False) if old and not old.get("ChecksumSHA256") else None
                        part_hash = hashlib.sha256()
                        left = length
                        while left:
                            chunk = fh.read(min(READ_CHUNK, left))
                            if not chunk:
                                raise OffsiteError(LOCAL_ERROR, f"{local_path} became shorter during the upload")
                            part_hash.update(chunk)
                            whole.update(chunk)
                            if md5:
                                md5.update(chunk)
                            left -= len(chunk)
                        digest = part_hash.digest()
                        digests.append(digest)
                        if old and old.get("Size") == length and (
                                old.get("ChecksumSHA256") == b64(digest)
                                or (md5 and str(old.get("ETag", "")).strip('"') == md5.hexdigest())):
                            parts[number] = {"PartNumber": number, "ETag": old["ETag"], "ChecksumSHA256": b64(digest)}
                            kept += 1
                            done_bytes += length
                            if progress:
                                progress(done_bytes, size)
                            continue
                        while len(pending) >= self.concurrency:
                            collect(block=True)
                        future = pool.submit(self._send_part, local_path, key, upload_id, number, offset, length,
                                             digest)
                        pending[future] = (number, length)
                        collect(block=False)
                while pending:
                    collect(block=True)
            except OSError as exc:
                raise OffsiteError(LOCAL_ERROR, f"Reading the local backup failed: {exc.strerror}") from exc
            finally:
                for future in pending:
                    future.cancel()
        return whole.hexdigest(), digests, [parts[n] for n in sorted(parts)], kept

    def _ensure_lock(self, key, version_id, lock_until, remote_name) -> None:
        """Object Lock asked at creation; services that ignored the headers (moto)
        get a retention put after. A copy that cannot be locked is removed: the
        upload failed, as asked."""
        version = {"VersionId": version_id} if version_id and version_id != "null" else {}
        try:
            head = self._call(f"checking the lock of {remote_name}", self.client.head_object, Bucket=self.bucket,
                              Key=key, **version)
            if head.get("ObjectLockRetainUntilDate"):
                return
            self._call(f"locking {remote_name}", self.client.put_object_retention, Bucket=self.bucket, Key=key,
                       Retention={"Mode": self.lock_mode, "RetainUntilDate": lock_until}, **version)
        except OffsiteError as exc:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key, **version)
            except Exception:
                pass
            raise OffsiteError(exc.code, f"{exc.message} — the copy could not be locked for its retention (is "
                               f"Object Lock enabled on bucket {self.bucket!r}?) and was removed") from exc

    def abort_incomplete(self, prefix_or_state="") -> int:
        if isinstance(prefix_or_state, dict):
            state = prefix_or_state
            if state.get("kind") != "s3" or state.get("bucket") != self.bucket or not state.get("upload_id"):
                return 0
            uploads = [(state["key"], state["upload_id"])]
        else:
            prefix = self.key_prefix + names.check_prefix(prefix_or_state)
            uploads = []
            pages = self._call("listing unfinished uploads", lambda: list(
                self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)),
                missing=BUCKET_NOT_FOUND)
            for page in pages:
                uploads += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        aborted = 0
        from botocore.exceptions import ClientError
        for key, upload_id in uploads:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                aborted += 1
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise self._error(exc, f"aborting the unfinished upload of {key}") from exc
            except Exception as exc:
                raise self._error(exc, f"aborting the unfinished upload of {key}") from exc
        return aborted

    # -- verify and read -----------------------------------------------------
    def verify(self, remote_name, *, size, sha256, part_size=None, composite=None, local_path=None,
               read_back=False) -> VerifyResult:
        key = self._key(remote_name)
        head = self._call(f"checking {remote_name}", self.client.head_object, Bucket=self.bucket, Key=key,
                          ChecksumMode="ENABLED")
        remote_size = head["ContentLength"]
        if remote_size != size:
            raise OffsiteError(SIZE_MISMATCH, f"The copy of {remote_name} on {self.name} has {remote_size} bytes, "
                               f"the backup has {size}")
        remote = head.get("ChecksumSHA256")
        # A multipart object: its ETag is "md5-N" on every S3 service, its checksum "sha256-N" (some leave out -N).
        is_composite = (head.get("ChecksumType") == "COMPOSITE" or "-" in (remote or "")
                        or "-" in str(head.get("ETag", "")))
        if read_back or not remote or (is_composite and composite is None and local_path is None):
            return self._read_back(remote_name, size, sha256)
        if not is_composite:      # a single PUT (a sidecar): S3 holds the whole object's SHA-256
            expected = b64(bytes.fromhex(sha256))
        elif composite is not None:
            expected = composite
        else:
            try:
                local = file_digests(local_path, part_size or choose_part_size(size, self.part_size))
            except OSError as exc:
                raise OffsiteError(LOCAL_ERROR, f"Cannot read the local backup {local_path}: {exc.strerror}") from exc
            if local.sha256 != sha256:
                raise OffsiteError(LOCAL_ERROR, f"The local backup {local_path} no longer has the SHA-256 recorded "
                                   "for it; the copy cannot be checked against it")
            expected = local.composite
        if not _same_checksum(remote, expected):
            raise OffsiteError(CHECKSUM_MISMATCH, f"The copy of {remote_name} on {self.name} has other bytes than "
                               f"the backup (S3 checksum {remote}, expected {expected})")
        return VerifyResult(remote_name=remote_name, size=remote_size,
                            method="s3_composite" if is_composite else "s3_checksum", checksum=remote)

    def _read_back(self, remote_name, size, sha256) -> VerifyResult:
        digest = hashlib.sha256()
        with self.open_read(remote_name) as stream:
            for chunk in iter(lambda: stream.read(READ_CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise OffsiteError(CHECKSUM_MISMATCH, f"The copy of {remote_name} on {self.name} has other bytes than "
                               f"the backup (SHA-256 {digest.hexdigest()[:12]}…, expected {sha256[:12]}…)")
        return VerifyResult(remote_name=remote_name, size=size, method="read_back", checksum=digest.hexdigest())

    def open_read(self, remote_name, offset=0, length=None):
        key = self._key(remote_name)
        if length == 0:
            return BoundedStream(io.BytesIO(), 0)
        byte_range = f"bytes={int(offset)}-" + (str(int(offset) + int(length) - 1) if length else "")
        kwargs = {"Range": byte_range} if (offset or length) else {}
        answer = self._call(f"reading {remote_name}", self.client.get_object, Bucket=self.bucket, Key=key, **kwargs)
        return _Body(answer["Body"], self, remote_name)

    def _get_small(self, remote_name) -> bytes:
        self._key(remote_name)
        size = self._call(f"reading {remote_name}", self.storage.size, remote_name)
        if size > SMALL_LIMIT:
            raise OffsiteError(TOO_LARGE, f"{remote_name} is larger than {SMALL_LIMIT} bytes")
        with self._call(f"reading {remote_name}", self.storage.open, remote_name, "rb") as fh:
            return self._call(f"reading {remote_name}", fh.read)

    def put_small(self, remote_name, data) -> None:
        data = bytes(data)
        self._call(f"writing {remote_name}", self.client.put_object, Bucket=self.bucket, Key=self._key(remote_name),
                   Body=data, ChecksumAlgorithm="SHA256", ChecksumSHA256=b64(hashlib.sha256(data).digest()),
                   missing=BUCKET_NOT_FOUND)

    def exists(self, remote_name) -> bool:
        self._key(remote_name)
        return self._call(f"looking for {remote_name}", self.storage.exists, remote_name)

    def delete(self, remote_name) -> bool:
        existed = self.exists(remote_name)
        self._call(f"deleting {remote_name}", self.storage.delete, remote_name)
        return existed

    def list(self, prefix="") -> list[RemoteEntry]:
        full = self.key_prefix + names.check_prefix(prefix)
        entries = []
        pages = self._call("listing the bucket", lambda: list(
            self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)),
            missing=BUCKET_NOT_FOUND)
        for page in pages:
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue
                modified = obj.get("LastModified")
                entries.append(RemoteEntry(name=obj["Key"][len(self.key_prefix):], size=obj["Size"],
                                           modified=modified.astimezone(dt.timezone.utc) if modified else None))
        return sorted(entries, key=lambda e: e.name)

    def signed_url(self, remote_name, expires=300, filename=None) -> str:
        self._key(remote_name)
        parameters = None
        if filename:  # the browser saves it under the backup's own name, not the key's
            safe = "".join(c for c in str(filename) if c.isprintable() and c not in '"\\/')
            parameters = {"ResponseContentDisposition": f'attachment; filename="{safe}"',
                          "ResponseContentType": "application/octet-stream"}
        return self._call(f"signing a URL for {remote_name}", self.storage.url, remote_name, parameters=parameters,
                          expire=int(expires))


def _same_checksum(remote: str, expected: str) -> bool:
    """``digest-N`` against ``digest-N``; some services (and moto) leave out the
    ``-N`` part count, which is then not compared."""
    remote_digest, _, remote_parts = remote.partition("-")
    expected_digest, _, expected_parts = expected.partition("-")
    return remote_digest == expected_digest and (not remote_parts or remote_parts == expected_parts)


class _Body:
    """botocore's streaming body, with its errors mapped to codes."""

    def __init__(self, body, target: S3Target, remote_name: str):
        self._body, self._target, self._name = body, target, remote_name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._body.read(None if size is None or size < 0 else size)
        except Exception as exc:
            raise self._target._error(exc, f"reading {self._name}") from exc

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
