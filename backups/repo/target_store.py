"""A repository on a storage target (issue #14: "a repository lives on any
target"): the five Store calls over backups.offsite's Target API, under a
folder of the target (``mcsite-repo/<name>/`` by default). Small documents
(config, indexes, snapshots, locks) are written with ``put_small`` (atomic);
packs through ``upload`` from a temporary file (a multipart upload on S3, a
temporary name then a rename on SFTP and folders): a name only ever holds a
complete object, as the repository's crash rules need."""

from __future__ import annotations

import os
import tempfile

from backups.offsite import OffsiteError
from backups.offsite.base import SMALL_LIMIT
from backups.repo.repository import RepositoryError


class TargetStore:
    def __init__(self, target, folder: str):
        self.target = target
        self.folder = folder.strip("/") + "/"

    def _name(self, name: str) -> str:
        return self.folder + name

    def put(self, name: str, data: bytes) -> None:
        if len(data) <= SMALL_LIMIT:
            self.target.put_small(self._name(name), data)
            return
        fd, temporary = tempfile.mkstemp(prefix="mcsite-pack-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            self.target.upload(temporary, self._name(name))
        finally:
            os.unlink(temporary)

    def get(self, name: str) -> bytes:
        try:
            stream = self.target.open_read(self._name(name))
        except OffsiteError as exc:
            if exc.code == "NOT_FOUND":
                raise RepositoryError(f"{name}: missing") from None
            raise
        try:
            return stream.read()
        finally:
            stream.close()

    def read_at(self, name: str):
        def read(offset: int, length: int) -> bytes:
            stream = self.target.open_read(self._name(name), offset=offset, length=length)
            try:
                return stream.read()
            finally:
                stream.close()
        return read

    def size(self, name: str) -> int:
        for entry in self.target.list(self._name(name)):
            if entry.name == self._name(name):
                return entry.size
        raise RepositoryError(f"{name}: missing")

    def list(self, prefix: str) -> list[str]:
        start = self._name(prefix.rstrip("/") + "/")
        return [entry.name[len(self.folder):] for entry in self.target.list(start)]

    def sizes(self, prefix: str) -> dict[str, int]:
        start = self._name(prefix.rstrip("/") + "/")
        return {entry.name[len(self.folder):]: entry.size for entry in self.target.list(start)}

    def exists(self, name: str) -> bool:
        return self.target.exists(self._name(name))

    def delete(self, name: str) -> None:
        self.target.delete(self._name(name))
