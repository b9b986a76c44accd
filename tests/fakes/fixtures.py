"""Pytest fixtures and helpers around the fake Minecraft server (fake_minecraft.py).

Import the fixtures into a conftest or a test module::

    from tests.fakes.fixtures import fake_server, fake_server_factory  # noqa: F401
    # or, lint-clean in a test module: fake_server = fixtures.fake_server

Every fake started under a test's folder — by control.start, by a test's own
Popen, or left behind by a failure — is killed when the test ends.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shlex
import shutil
import socket
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from servers.control import ServerProcessSpec
from servers.rcon import RconClient, RconError

FAKE_MINECRAFT = Path(__file__).resolve().with_name("fake_minecraft.py")
REAL_WORLD = Path(__file__).resolve().parents[1] / "fixtures" / "worlds" / "vanilla-1.14.4" / "world"


def free_port() -> int:
    """A port free right now, drawn below the kernel's ephemeral range: a port
    a fake gives up while restarting is then unlikely to be handed to another
    test worker's bind(0)."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port found in 20000-32000")


@dataclass
class FakeServer:
    directory: Path
    rcon_port: int
    rcon_password: str
    spec: ServerProcessSpec

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.spec.start_command)

    @property
    def world(self) -> Path:
        return self.directory / "world"

    def rcon(self, timeout: float = 5.0) -> RconClient:
        return RconClient("127.0.0.1", self.rcon_port, self.rcon_password, timeout=timeout)

    def control(self, **options) -> None:
        """Write fake-control.json (ignore_stop, ignore_sigterm, crash_after, hang_rcon)."""
        (self.directory / "fake-control.json").write_text(json.dumps(options), encoding="utf-8")

    def wait_ready(self, timeout: float = 10.0) -> None:
        wait_rcon_ready("127.0.0.1", self.rcon_port, self.rcon_password, timeout=timeout)


def make_fake_server(
    root: Path,
    name: str = "server",
    *,
    flags: tuple[str, ...] = (),
    rcon: bool = True,
    password: str | None = None,
    stop_timeout: float = 2.0,
    copy_real_world: bool = False,
) -> FakeServer:
    """A server folder under ``root`` with server.properties on a free port, and
    its ServerProcessSpec (start command: this Python running fake_minecraft.py).
    The RCON password is random unless given, so a test can never log in to
    another test's fake by mistake."""
    password = password or f"fake-{secrets.token_hex(8)}"
    directory = root / name
    directory.mkdir(parents=True)
    port = free_port()
    (directory / "server.properties").write_text(
        "#Minecraft server properties\n"
        f"enable-rcon={'true' if rcon else 'false'}\n"
        f"rcon.port={port}\n"
        f"rcon.password={password if rcon else ''}\n"
        "level-name=world\n"
        "server-ip=127.0.0.1\n",
        encoding="utf-8",
    )
    if copy_real_world:
        shutil.copytree(REAL_WORLD, directory / "world")
        for path in (directory / "world").rglob("*"):  # the fixture is read-only
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    command = shlex.join([sys.executable, str(FAKE_MINECRAFT), *flags, "nogui"])
    spec = ServerProcessSpec(
        directory=directory,
        start_command=command,
        rcon_host="127.0.0.1",
        rcon_port=port,
        rcon_password=password if rcon else "",
        stop_timeout=stop_timeout,
    )
    return FakeServer(directory=directory, rcon_port=port, rcon_password=password, spec=spec)


def wait_rcon_ready(host: str, port: int, password: str, timeout: float = 10.0) -> None:
    """Poll until an RCON login and ``list`` succeed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with RconClient(host, port, password, timeout=1.0) as rcon:
                rcon.command("list")
            return
        except RconError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def fakes_under(root: Path) -> list[psutil.Process]:
    """Live fake_minecraft processes whose working directory is under ``root``."""
    root_text = os.path.realpath(root) + os.sep
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        cmdline, cwd = proc.info["cmdline"] or [], proc.info["cwd"] or ""
        under_root = (os.path.realpath(cwd) + os.sep).startswith(root_text)
        if str(FAKE_MINECRAFT) in cmdline and under_root and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def kill_fakes_under(root: Path) -> int:
    procs = fakes_under(root)
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)
    return len(procs)


@pytest.fixture
def fake_server_factory(tmp_path):
    """``factory(name="server", flags=(), rcon=True, stop_timeout=2.0, copy_real_world=False)``."""
    root = tmp_path / "servers"  # the same folder the root conftest uses as MCSITE_SERVERS_ROOT
    root.mkdir(exist_ok=True)
    counter = iter(range(1, 1000))

    def factory(name: str | None = None, **kwargs) -> FakeServer:
        return make_fake_server(root, name or f"server{next(counter)}", **kwargs)

    try:
        yield factory
    finally:
        kill_fakes_under(root)


@pytest.fixture
def fake_server(fake_server_factory) -> FakeServer:
    """A fake server folder (not started)."""
    return fake_server_factory()
