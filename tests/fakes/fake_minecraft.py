#!/usr/bin/env python3
"""A fake Minecraft Java server: a real process for server-control and live-backup tests.

Run it like the real thing, with the server folder as working directory::

    python tests/fakes/fake_minecraft.py [--ignore-stop] [--ignore-sigterm]
        [--crash-after SECONDS] [--hang-rcon] [--startup-delay SECONDS]
        [--players alice,bob] [--read-only-world]

What it does, as vanilla 1.14 does:

* reads ``server.properties`` (``enable-rcon``, ``rcon.port``, ``rcon.password``,
  ``level-name``, ``server-ip``); RCON is off without a password;
* serves RCON on a real TCP port with the real server's quirks: one
  ``recv(1460)`` per request and the connection dropped when that read is not
  exactly one packet; request id -1 for a bad password; replies split into
  packets of 4096 characters; "Unknown request <hex>" for unknown types;
* while saving is on, keeps writing its world: every ~75 ms a chunk of a region
  file is rewritten IN PLACE (new ``LastUpdate``, header timestamp updated, the
  file stays a valid Anvil file) and ``level.dat`` gets a new ``Time`` /
  ``LastPlayed``. Writes go through an IO queue that lags ~150 ms behind, like
  the real chunk IO worker, so ``save-off`` alone does not make the world still:
  ``save-all flush`` drains the queue and only then answers "Saved the game";
* ``stop`` (RCON or typed on stdin), SIGTERM and SIGINT save and exit 0;
* ``list`` answers as 1.14 does, "There are 2 of a max 20 players online:
  alice, bob", with the players of ``--players`` (comma-separated), of
  ``"players"`` in ``fake-control.json`` when it is there, or of the last
  ``fake-players alice,bob`` command (empty: nobody; kept until a restart);
* ``say <text>`` logs ``[Rcon] <text>`` on the console as the real server
  does (mcsite sends the console to ``logs/mcsite-console.log``, so a test
  reads what players were told, in order, across the restarts of a stop-mode
  backup); ``fake-said`` answers the texts said since start as a JSON list;
* creates a tiny valid world (``level.dat`` + one region file with four zlib
  chunks) when the level folder has no ``level.dat``; a copied real world is
  written to in place too.

Misbehaviour, by argument or by ``fake-control.json`` in the folder (re-read
every loop; a true value in either place switches it on)::

    {"ignore_stop": true, "ignore_sigterm": true, "crash_after": 2, "hang_rcon": true}

``ignore_stop`` answers "Stopping the server" and keeps running; ``crash_after``
N exits 1 without saving N seconds after start (0: before "Done"); ``hang_rcon``
accepts connections and reads requests but never answers.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
import zlib
from datetime import datetime
from pathlib import Path

import nbtlib
from nbtlib import Byte, Compound, Int, IntArray, List, Long, String

CONTROL_FILE = "fake-control.json"
WRITE_INTERVAL = 0.075
IO_LAG = 0.15
DATA_VERSION = 1976  # 1.14.4
SECTOR = 4096
TINY_CHUNKS = [(0, 0), (1, 0), (0, 1), (1, 1)]
LONG_REPLY = "".join(
    f"/fake-command-{i:04d} <target> [<amount>] — réponse longue {'x' * (i % 7)}\n" for i in range(300)
)


def log(message: str, level: str = "INFO", thread: str = "Server thread") -> None:
    print(f"[{datetime.now():%H:%M:%S}] [{thread}/{level}]: {message}", flush=True)


def read_properties(path: Path) -> dict[str, str]:
    properties = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "!")) and "=" in line:
                key, value = line.split("=", 1)
                properties[key.strip()] = value.strip().replace("\\:", ":").replace("\\=", "=")
    return properties


# -- world -------------------------------------------------------------------


def _nbt_bytes(root: Compound) -> bytes:
    buffer = io.BytesIO()
    nbtlib.File(root, root_name="").write(buffer)
    return buffer.getvalue()


def tiny_chunk(x: int, z: int, tick: int) -> Compound:
    return Compound(
        {
            "DataVersion": Int(DATA_VERSION),
            "Level": Compound(
                {
                    "xPos": Int(x),
                    "zPos": Int(z),
                    "LastUpdate": Long(tick),
                    "InhabitedTime": Long(0),
                    "Status": String("full"),
                    "Biomes": IntArray([1] * 256),
                    "Sections": List[Compound]([]),
                    "Entities": List[Compound]([]),
                    "TileEntities": List[Compound]([]),
                }
            ),
        }
    )


class World:
    def __init__(self, folder: Path, level_name: str):
        self.folder = folder
        self.level_name = level_name
        self.tick = 0
        self.next_chunk = 0
        self.lock = threading.Lock()
        if not (folder / "level.dat").exists():
            self.create()

    def create(self) -> None:
        region_dir = self.folder / "region"
        region_dir.mkdir(parents=True, exist_ok=True)
        header_locations, header_times, body = bytearray(SECTOR), bytearray(SECTOR), bytearray()
        for x, z in TINY_CHUNKS:
            sector = 2 + len(body) // SECTOR
            body += self._chunk_record(tiny_chunk(x, z, 0), sectors=1)
            index = (x % 32) + (z % 32) * 32
            header_locations[index * 4 : index * 4 + 4] = struct.pack(">I", (sector << 8) | 1)
            header_times[index * 4 : index * 4 + 4] = struct.pack(">I", int(time.time()))
        (region_dir / "r.0.0.mca").write_bytes(bytes(header_locations + header_times + body))
        self.write_level_dat()
        log(f"Created a new world in {self.folder.name}")

    @staticmethod
    def _chunk_record(chunk: Compound, sectors: int) -> bytes | None:
        data = zlib.compress(_nbt_bytes(chunk))
        record = struct.pack(">IB", len(data) + 1, 2) + data
        if len(record) > sectors * SECTOR:
            return None
        return record + bytes(sectors * SECTOR - len(record))

    def write_level_dat(self) -> None:
        path = self.folder / "level.dat"
        if path.exists():
            level = nbtlib.load(path)
        else:
            level = nbtlib.File({"Data": Compound()}, gzipped=True, root_name="")
        data = level.setdefault("Data", Compound())
        data.update(
            {
                "DataVersion": Int(DATA_VERSION),
                "LevelName": String(self.level_name),
                "Version": Compound({"Id": Int(DATA_VERSION), "Name": String("1.14.4"), "Snapshot": Byte(0)}),
                "version": Int(19133),
                "initialized": Byte(1),
                "Time": Long(int(data.get("Time", 0)) + 1),
                "DayTime": Long(int(data.get("DayTime", 0)) + 1),
                "LastPlayed": Long(int(time.time() * 1000)),
            }
        )
        # The real server writes level.dat_new, keeps level.dat_old, then renames.
        new = path.with_name("level.dat_new")
        level.save(new, gzipped=True)
        os.replace(new, path)

    def rewrite_one_chunk(self) -> None:
        """Rewrite one existing chunk in place with a new LastUpdate."""
        regions = sorted(
            p for p in (self.folder / "region").glob("r.*.mca") if p.stat().st_size >= 2 * SECTOR
        )
        if not regions:
            return
        self.tick += 1
        path = regions[self.tick % len(regions)]
        with open(path, "r+b") as region:
            header = region.read(SECTOR)
            present = [i for i in range(1024) if header[i * 4 : i * 4 + 4] != b"\0\0\0\0"]
            if not present:
                return
            index = present[self.next_chunk % len(present)]
            self.next_chunk += 1
            (entry,) = struct.unpack(">I", header[index * 4 : index * 4 + 4])
            offset, sectors = (entry >> 8) * SECTOR, entry & 0xFF
            region.seek(offset)
            length, compression = struct.unpack(">IB", region.read(5))
            if compression != 2:
                return
            chunk = nbtlib.File.parse(io.BytesIO(zlib.decompress(region.read(length - 1))))
            level = chunk.get("Level", chunk)
            level["LastUpdate"] = Long(int(level.get("LastUpdate", 0)) + 20)
            record = self._chunk_record(chunk, sectors)
            if record is None:
                return
            region.seek(offset)
            region.write(record)
            region.seek(SECTOR + index * 4)
            region.write(struct.pack(">I", int(time.time())))


# -- server ------------------------------------------------------------------


class FakeServer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.started = time.monotonic()
        self.properties = read_properties(Path("server.properties"))
        self.world = World(
            Path(self.properties.get("level-name") or "world"), self.properties.get("level-name") or "world"
        )
        self.saving = True
        self.state_lock = threading.RLock()  # the "main thread": commands and the writer take turns
        self.io_queue: queue.Queue = queue.Queue()
        self.stop_requested = threading.Event()
        self.options = self.read_options()
        self.listener: socket.socket | None = None
        self.players_set: list[str] | None = None  # by `fake-players`
        self.said: list[str] = []

    def read_options(self) -> dict:
        from_file = {}
        try:
            from_file = json.loads(Path(CONTROL_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            pass
        crash_after = from_file.get("crash_after", self.args.crash_after)
        players = from_file.get("players")
        if isinstance(players, str):
            players = [p for p in players.split(",") if p.strip()]
        return {
            "players": [str(p).strip() for p in players] if isinstance(players, list) else None,
            "ignore_stop": bool(self.args.ignore_stop or from_file.get("ignore_stop")),
            "ignore_sigterm": bool(self.args.ignore_sigterm or from_file.get("ignore_sigterm")),
            "hang_rcon": bool(self.args.hang_rcon or from_file.get("hang_rcon")),
            "crash_after": None if crash_after is None else float(crash_after),
        }

    # commands, shared by RCON and the console
    def execute(self, command: str) -> str:
        name, _, rest = command.strip().lstrip("/").partition(" ")
        with self.state_lock:
            if name == "list":
                players = self.players()
                return f"There are {len(players)} of a max 20 players online: {', '.join(players)}"
            if name == "say":
                self.said.append(rest)
                log(f"[Rcon] {rest}")
                return ""
            if name == "fake-said":
                return json.dumps(self.said)
            if name == "fake-players":
                self.players_set = [p.strip() for p in rest.split(",") if p.strip()]
                return f"Players online: {', '.join(self.players_set) or 'nobody'}"
            if name == "save-off":
                if not self.saving:
                    return "Saving is already turned off"
                self.saving = False
                return "Automatic saving is now disabled"
            if name == "save-on":
                if self.saving:
                    return "Saving is already turned on"
                self.saving = True
                return "Automatic saving is now enabled"
            if name == "save-all":
                self.save(flush=rest.strip() == "flush")
                return "Saving the game (this may take a moment!)Saved the game"
            if name == "stop":
                if self.options["ignore_stop"]:
                    log("Ignoring stop (fake-control)", "WARN")
                else:
                    self.stop_requested.set()
                return "Stopping the server"
            if name in ("help", "fake-long"):
                return LONG_REPLY
            if name == "fake-echo":
                return rest
            return "Unknown or incomplete command, see below for error" + command + "<--[HERE]"

    def players(self) -> list[str]:
        from_file = self.read_options()["players"]
        if from_file is not None:
            return from_file
        if self.players_set is not None:
            return self.players_set
        return [p.strip() for p in (self.args.players or "").split(",") if p.strip()]

    def save(self, flush: bool) -> None:
        with self.state_lock:  # no new writes are queued meanwhile
            if flush:
                self.io_queue.join()
            if self.args.read_only_world:
                return
            with self.world.lock:
                self.world.write_level_dat()

    def io_worker(self) -> None:
        while True:
            due, job = self.io_queue.get()
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                with self.world.lock:
                    job()
            except Exception as exc:  # noqa: BLE001 — keep serving; the test sees the log
                log(f"World write failed: {exc!r}", "ERROR", "IO-Worker")
            finally:
                self.io_queue.task_done()

    def run(self) -> int:
        log("Starting minecraft server version 1.14.4")
        log("Loading properties")
        if self.options["crash_after"] == 0:
            print("Exception in server tick loop: fake crash at start-up", file=sys.stderr, flush=True)
            return 1
        time.sleep(self.args.startup_delay)
        threading.Thread(target=self.io_worker, name="IO-Worker", daemon=True).start()
        log(f'Preparing level "{self.world.level_name}"')
        self.start_rcon()
        threading.Thread(target=self.console, name="Server console handler", daemon=True).start()
        log(f'Done ({time.monotonic() - self.started:.3f}s)! For help, type "help"')
        beat = 0
        while not self.stop_requested.is_set():
            self.options = self.read_options()
            crash_after = self.options["crash_after"]
            if crash_after is not None and time.monotonic() - self.started >= crash_after:
                print("Exception in server tick loop: fake crash", file=sys.stderr, flush=True)
                os._exit(1)
            with self.state_lock:
                if self.saving and not self.args.read_only_world:
                    beat += 1
                    due = time.monotonic() + IO_LAG
                    self.io_queue.put((due, self.world.rewrite_one_chunk))
                    if beat % 3 == 0:
                        self.io_queue.put((due, self.world.write_level_dat))
            time.sleep(WRITE_INTERVAL)
        log("Stopping server")
        log("Saving worlds")
        self.save(flush=True)
        if self.listener is not None:
            self.listener.close()
        log("Stopped")
        return 0

    def on_sigterm(self, signum, frame) -> None:
        if self.read_options()["ignore_sigterm"]:
            log(f"Ignoring signal {signum} (fake-control)", "WARN")
        else:
            self.stop_requested.set()

    def console(self) -> None:
        for line in sys.stdin:
            if line.strip():
                log(self.execute(line))

    # RCON
    def start_rcon(self) -> None:
        props = self.properties
        if props.get("enable-rcon", "false").lower() != "true":
            return
        password, port = props.get("rcon.password", ""), int(props.get("rcon.port", "25575"))
        if not password:
            log("No rcon password set in server.properties, rcon disabled!", "WARN")
            return
        host = props.get("server-ip") or "127.0.0.1"
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(8)
        threading.Thread(target=self.accept_loop, args=(password,), name="RCON Listener", daemon=True).start()
        log(f"RCON running on {host}:{port}", thread="RCON Listener")

    def accept_loop(self, password: str) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self.rcon_client, args=(conn, password), name="RCON Client", daemon=True
            ).start()

    def rcon_client(self, conn: socket.socket, password: str) -> None:
        authed = False
        with conn:
            while True:
                try:
                    data = conn.recv(1460)
                except OSError:
                    return
                if len(data) < 10:
                    return
                (length,) = struct.unpack_from("<i", data)
                if length != len(data) - 4:  # exactly one packet per read, or the real server hangs up
                    return
                request_id, packet_type = struct.unpack_from("<ii", data, 4)
                body = data[12:].split(b"\0", 1)[0].decode("utf-8", errors="replace")
                if self.read_options()["hang_rcon"]:
                    continue
                try:
                    if packet_type == 3:
                        authed = body == password
                        self.send(conn, request_id if authed else -1, 2, "")
                    elif packet_type == 2:
                        if authed:
                            self.send_reply(conn, request_id, self.execute(body))
                        else:
                            self.send(conn, -1, 2, "")
                    else:
                        self.send_reply(conn, request_id, f"Unknown request {packet_type:x}")
                except OSError:
                    return

    @staticmethod
    def send(conn: socket.socket, request_id: int, packet_type: int, body: str) -> None:
        payload = body.encode("utf-8")
        conn.sendall(struct.pack("<iii", len(payload) + 10, request_id, packet_type) + payload + b"\0\0")

    def send_reply(self, conn: socket.socket, request_id: int, text: str) -> None:
        while True:  # split like the real server: 4096 characters per packet
            self.send(conn, request_id, 0, text[:4096])
            text = text[4096:]
            if not text:
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ignore-stop", action="store_true")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--hang-rcon", action="store_true")
    parser.add_argument("--crash-after", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--startup-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--read-only-world", action="store_true",
                        help="never write the world (no autosave, no save at stop): its bytes stay as they are")
    parser.add_argument("--players", default="", metavar="NAMES",
                        help="comma-separated names of the players `list` says are online")
    parser.add_argument("nogui", nargs="?", help="accepted and ignored, like the real server")
    args = parser.parse_args(argv)
    server = FakeServer(args)
    signal.signal(signal.SIGTERM, server.on_sigterm)
    signal.signal(signal.SIGINT, server.on_sigterm)
    return server.run()


if __name__ == "__main__":
    sys.exit(main())
