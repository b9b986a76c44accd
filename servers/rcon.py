"""A small, blocking RCON client for Minecraft Java servers.

Protocol, as vanilla Minecraft implements it (``net.minecraft.server.rcon``):
every packet is ``<int32 length><int32 request id><int32 type><body>\\0\\0``,
little-endian, where ``length`` counts everything after itself. Types: 3 = login,
2 = command (and the server's login answer), 0 = response. A wrong password
is answered with request id -1.

Quirks of the real server this client is built around:

* The server reads each request with ONE ``read(buf, 0, 1460)`` and drops the
  connection when that read does not hold exactly one packet. So a client must
  never send two packets back to back, and a command body is at most 1446 bytes.
* Replies longer than 4096 characters are split into several type-0 packets
  with the same request id, and nothing marks the last one. To find the end we
  wait for the FIRST reply packet (the server has then consumed our command
  read), then send a second packet of an unknown type with a new id. The server
  handles one packet at a time, so its answer to that one ("Unknown request
  64") arrives after every fragment of the real reply. No idle-read guessing,
  and it works however slowly the command runs.
* The server closes idle or broken connections; the next ``command`` reconnects.

What a user is told (issue #11): the host and port are the user's to set and
the worker connects from inside the network, so the messages must not tell a
closed port from a silent one or from something that is not RCON. Every way
the connection or the login fails gives ONE message (``UNREACHABLE_MESSAGE``);
the precise reason stays on the exception (``exc.detail``) and is logged as a
``server_control rcon_unreachable`` line. Errors after a good login (the peer
proved to be the user's own RCON server) keep their precise text.

No maintained PyPI client fitted: ``mcrcon`` times out through ``signal.alarm``
(main thread only, so unusable in a Celery worker) and neither it nor ``rcon``
reads fragmented replies the way described above.
"""

from __future__ import annotations

import itertools
import logging
import select
import socket
import struct
import time
from typing import Self

LOGIN = 3
COMMAND = 2
RESPONSE = 0
END_MARKER_TYPE = 100  # unknown to the server: it answers "Unknown request 64"
MAX_COMMAND_BYTES = 1446  # the server reads at most 1460 bytes per packet
MAX_PACKET_LENGTH = 64 * 1024  # 4096 UTF-16 units are at most ~12 KiB of UTF-8
UNREACHABLE_MESSAGE = (
    "Could not reach the server's RCON (check that the server is running, enable-rcon, "
    "rcon.port and the password)."
)

logger = logging.getLogger("mcsite.servers")


class RconError(Exception):
    """Any RCON failure. ``str(exc)`` is what a user may read; ``detail`` is
    the precise reason, for the log and for admins."""

    @property
    def detail(self) -> str:
        return getattr(self, "_detail", None) or str(self)


def rcon_failure_message(exc: BaseException, *, detailed: bool) -> str:
    """The text to show for an RCON failure: the precise reason for an admin
    (``detailed=True``), else the one message that says nothing about what
    listens at the address."""
    if isinstance(exc, RconError):
        return exc.detail if detailed else str(exc)
    return str(exc)


class RconConnectionError(RconError):
    """The TCP connection could not be made or was lost."""


class RconConnectionRefused(RconConnectionError):
    """Nothing listens on the RCON port."""


class RconAuthError(RconError):
    """The server rejected the password."""


class RconTimeout(RconError):
    """The server did not answer in time."""


class RconProtocolError(RconError):
    """The server sent something that is not an RCON packet."""


def _quoted(text: str) -> str:
    """A log value on one line (logfmt quoting, as backups/events.py writes)."""
    escaped = "".join(
        {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
        or (ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 0x100
            else f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        for ch in text
    )
    return f'"{escaped}"'


def encode_packet(request_id: int, packet_type: int, body: str) -> bytes:
    payload = body.encode("utf-8")
    return struct.pack("<iii", len(payload) + 10, request_id, packet_type) + payload + b"\0\0"


class RconClient:
    """``with RconClient(host, port, password, timeout=5) as rcon: rcon.command("list")``.

    Not thread-safe: use one client per thread.
    """

    def __init__(self, host: str, port: int, password: str, timeout: float = 5.0):
        self.host = host
        self.port = int(port)
        self.password = password
        self.timeout = float(timeout)
        self._sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._replied = False
        self._budget = self.timeout  # for messages: the limit of the exchange under way

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def connect(self) -> None:
        """Open the connection and log in (again, if it was open).

        Any failure raises with ``UNREACHABLE_MESSAGE`` as its text (the
        exception class and ``detail`` still say what happened)."""
        self.close()
        if not self.password:  # said plainly: it tells nothing about the network
            raise RconAuthError(
                f"No RCON password for {self.address}: Minecraft disables RCON when rcon.password is empty."
            )
        try:
            self._connect_and_login()
        except RconError as exc:
            self.close()
            exc._detail = str(exc)
            exc.args = (UNREACHABLE_MESSAGE,)
            logger.warning("server_control rcon_unreachable address=%s reason=%s", self.address,
                           _quoted(exc._detail))
            raise

    def _connect_and_login(self) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except ConnectionRefusedError as exc:
            raise RconConnectionRefused(
                f"RCON connection to {self.address} refused — is the server running and "
                f"enable-rcon=true with rcon.port={self.port} in server.properties?"
            ) from exc
        except TimeoutError as exc:
            raise RconTimeout(
                f"RCON connection to {self.address} timed out after {self.timeout:g} s."
            ) from exc
        except OSError as exc:
            raise RconConnectionError(f"RCON connection to {self.address} failed: {exc}") from exc
        self._budget = self.timeout
        deadline = time.monotonic() + self.timeout
        login_id = next(self._ids)
        self._send(login_id, LOGIN, self.password, "login")
        reply_id, _, _ = self._read_packet(deadline, "login")
        if reply_id == -1:
            self.close()
            raise RconAuthError(
                f"RCON login to {self.address} failed: wrong password (check rcon.password in server.properties)."
            )
        if reply_id != login_id:
            self.close()
            raise RconProtocolError(f"RCON login to {self.address}: unexpected reply id {reply_id}.")

    def command(self, command: str, timeout: float | None = None) -> str:
        """Run ``command`` and return its whole reply (all fragments joined).

        ``timeout`` bounds the whole exchange (default: the client's timeout);
        use a longer one for slow commands such as ``save-all flush``.
        """
        if len(command.encode("utf-8")) > MAX_COMMAND_BYTES:
            raise RconError(
                f"RCON command is longer than {MAX_COMMAND_BYTES} bytes; Minecraft would drop it."
            )
        reused = self._sock is not None and self._connection_looks_alive()
        if not reused:
            self.connect()
        self._replied = False
        try:
            return self._exchange(command, timeout)
        except RconConnectionError:
            if not reused or self._replied:
                raise
        # A reused connection the server had already closed: the command never
        # reached it (the drop was seen before any reply), so one retry is safe.
        self.connect()
        return self._exchange(command, timeout)

    # -- internals -------------------------------------------------------

    def _connection_looks_alive(self) -> bool:
        """Nothing should be waiting to be read between commands: if the socket
        is readable, the server closed it (or left garbage) — start afresh."""
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            readable = [True]
        if readable:
            self.close()
            return False
        return True

    def _exchange(self, command: str, timeout: float | None) -> str:
        self._budget = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + self._budget
        what = f"command {command!r}"
        request_id = next(self._ids)
        self._send(request_id, COMMAND, command, what)
        reply_id, _, body = self._read_packet(deadline, what)
        if reply_id == -1:
            self.close()
            raise RconAuthError(f"RCON server {self.address} refused {what}: not logged in.")
        if reply_id != request_id:
            self.close()
            raise RconProtocolError(f"RCON {what}: reply id {reply_id}, expected {request_id}.")
        self._replied = True
        parts = [body]
        end_id = next(self._ids)
        self._send(end_id, END_MARKER_TYPE, "", what)
        while True:
            reply_id, _, body = self._read_packet(deadline, what)
            if reply_id == end_id:
                break
            if reply_id != request_id:
                self.close()
                raise RconProtocolError(f"RCON {what}: reply id {reply_id}, expected {request_id}.")
            parts.append(body)
        return b"".join(parts).decode("utf-8", errors="replace")

    def _send(self, request_id: int, packet_type: int, body: str, what: str) -> None:
        try:
            self._sock.sendall(encode_packet(request_id, packet_type, body))
        except OSError as exc:
            self.close()
            raise RconConnectionError(
                f"RCON connection to {self.address} lost while sending {what}: {exc}"
            ) from exc

    def _read_packet(self, deadline: float, what: str) -> tuple[int, int, bytes]:
        (length,) = struct.unpack("<i", self._read_exact(4, deadline, what))
        if not 10 <= length <= MAX_PACKET_LENGTH:
            self.close()
            raise RconProtocolError(
                f"RCON server {self.address} sent a packet of length {length} for {what}."
            )
        data = self._read_exact(length, deadline, what)
        request_id, packet_type = struct.unpack_from("<ii", data)
        return request_id, packet_type, data[8:-2]

    def _read_exact(self, size: int, deadline: float, what: str) -> bytes:
        chunks, remaining = [], size
        while remaining:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                self._sock.settimeout(left)
                chunk = self._sock.recv(remaining)
            except TimeoutError as exc:
                # A late reply would be read as the answer to the next command.
                self.close()
                raise RconTimeout(
                    f"RCON server {self.address} did not answer {what} within {self._budget:g} s."
                ) from exc
            except OSError as exc:
                self.close()
                raise RconConnectionError(
                    f"RCON connection to {self.address} lost during {what}: {exc}"
                ) from exc
            if not chunk:
                self.close()
                raise RconConnectionError(f"RCON server {self.address} closed the connection during {what}.")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
