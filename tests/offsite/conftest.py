"""Real remote ends for the storage-target tests, started by the tests on 127.0.0.1.

* S3: moto's server mode (``ThreadedMotoServer``) on a free port, reached by
  boto3 over real HTTP. ``MotoS3.kill()`` stops it the way a crash does —
  listening socket closed and every open connection cut — while the S3 state
  (buckets, unfinished multipart uploads) stays, as on a real S3 whose
  endpoint went away; ``restart()`` serves again on the same port.
* SFTP: OpenSSH's own ``sshd`` as a real process with a temporary host key,
  ``authorized_keys`` and config. Without ``/usr/sbin/sshd`` the SFTP tests skip,
  or fail when REQUIRE_SERVICES=1 (CI installs openssh-server).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from backups.offsite import TargetConfig
from tests.conftest import REQUIRE_SERVICES, WORLD_FIXTURE

SSHD = "/usr/sbin/sshd"
S3_KEY_ID, S3_SECRET = "AKIDMCSITETEST", "mcsite-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- S3 ---------------------------------------------------------------------
class MotoS3(ThreadedMotoServer):
    """ThreadedMotoServer whose connections can be cut like a crashed server's."""

    def __init__(self, port: int):
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.url = f"http://127.0.0.1:{port}"
        self._sockets: set = set()
        self._lock = threading.Lock()

    def _server_entry(self) -> None:
        tracked, lock = self._sockets, self._lock

        class Handler(MotoRequestHandler):
            def setup(self):
                super().setup()
                with lock:
                    tracked.add(self.connection)

            def log_request(self, *args, **kwargs):  # keep the test output readable
                pass

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=Handler)
        self._server_ready_event.set()
        self._server.serve_forever()

    def kill(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in list(self._sockets):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._sockets.clear()
        self._thread.join(timeout=5)

    def restart(self) -> None:
        self._server_ready_event.clear()
        self.start()

    def client(self, key_id: str = S3_KEY_ID, secret: str = S3_SECRET):
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=key_id, aws_secret_access_key=secret)


@pytest.fixture(scope="session")
def moto_s3():
    server = MotoS3(free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture
def s3_bucket(moto_s3):
    name = f"mcsite-{uuid.uuid4().hex[:12]}"
    moto_s3.client().create_bucket(Bucket=name)
    return name


def s3_config(server: MotoS3, bucket: str, **settings) -> TargetConfig:
    secrets = {"access_key_id": settings.pop("access_key_id", S3_KEY_ID),
               "secret_access_key": settings.pop("secret_access_key", S3_SECRET)}
    base = {"bucket": bucket, "endpoint_url": server.url, "region": "us-east-1", "prefix": "mcsite/",
            "addressing_style": "path", "part_size_mib": 5, "max_attempts": 2}
    return TargetConfig(kind="s3", name="offsite-s3", settings={**base, **settings}, secrets=secrets)


# -- SFTP -------------------------------------------------------------------
def new_ed25519() -> tuple[str, str]:
    """(private key in OpenSSH format, public key line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, public


class Sshd:
    """One OpenSSH sshd on 127.0.0.1 serving SFTP (internal-sftp) to ``user``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.user = os_user()
        self.client_key, client_public = new_ed25519()
        (folder / "authorized_keys").write_text(client_public + "\n")
        self.root = folder / "remote"
        self.root.mkdir()
        self.process = None
        self.new_host_key()

    def new_host_key(self) -> None:
        private, self.host_key = new_ed25519()
        path = self.folder / "host_ed25519"
        path.write_text(private)
        path.chmod(0o600)

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        config = self.folder / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.folder / 'host_ed25519'}",
            f"PidFile {self.folder / 'sshd.pid'}", f"AuthorizedKeysFile {self.folder / 'authorized_keys'}",
            "PermitRootLogin yes", "PubkeyAuthentication yes", "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "MaxAuthTries 6",
            "Subsystem sftp internal-sftp", "LogLevel VERBOSE", ""]))
        self.log = open(self.folder / "sshd.log", "ab")
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.folder / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not answer within 10 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.log.close()
        self.process = None

    def config(self, **overrides) -> TargetConfig:
        secrets = {"private_key": self.client_key}
        for name in ("password", "private_key"):
            if name in overrides:
                secrets[name] = overrides.pop(name)
        settings = {"host": "127.0.0.1", "port": self.port, "username": self.user, "host_key": self.host_key,
                    "base_path": str(self.root), "timeout": 5}
        return TargetConfig(kind="sftp", name="offsite-sftp", settings={**settings, **overrides},
                            secrets={k: v for k, v in secrets.items() if v})


def os_user() -> str:
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def sshd(tmp_path):
    if not os.access(SSHD, os.X_OK):
        reason = f"needs OpenSSH's sshd at {SSHD} (apt-get install openssh-server)"
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    folder = tmp_path / "sshd"
    folder.mkdir()
    server = Sshd(folder)
    server.start()
    yield server
    server.stop()


# -- files to copy ----------------------------------------------------------
@pytest.fixture(scope="session")
def backup_file(tmp_path_factory):
    """A real backup of the fixture world (the engine's archive format)."""
    from backups.engine import create_archive

    folder = tmp_path_factory.mktemp("backup")
    source = folder / "server"
    shutil.copytree(WORLD_FIXTURE, source / "world")
    result = create_archive(source, folder / "vanilla.tar.zst", compression="zstd")
    return Path(result.path)


@pytest.fixture(scope="session")
def big_file(tmp_path_factory):
    """~40 MiB of random bytes: 8 parts of 5 MiB on S3, the last one short."""
    path = tmp_path_factory.mktemp("big") / "big.bin"
    with open(path, "wb") as fh:
        for _ in range(40):
            fh.write(os.urandom(1 << 20))
        fh.write(os.urandom(12345))
    return path
