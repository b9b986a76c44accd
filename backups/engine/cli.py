"""``python -m backups.engine``: open any mcsite backup without Django or a database.

For disaster recovery (issue #13): the site, its database and its sealed
secrets may all be gone; what is left is a backup file and the key or
password (typed in, or the JSON written by ``manage.py export_keys``).

    python -m backups.engine verify  FILE [secrets] [--sha256 HEX] [--no-world] [--restore-test] [--json]
    python -m backups.engine extract FILE [secrets] --to DIR [--path P ...]
    python -m backups.engine decrypt FILE [secrets] [--output OUT | --output -]
    python -m backups.engine list    FILE [secrets] [--json]

secrets: any of ``--key B64``, ``--password PW``, ``--password-file F``
(``-`` reads stdin), ``--keys-file EXPORTED.json``, each may be repeated; the
file's header tells which one opens it (``crypto.Keyring.match``).

Exit codes (see ``EXIT_CODES`` and docs/format.md): 0 done / verification
passed, 1 verification failed, 2 usage error (bad arguments, a key that is
not base64 of 32 bytes, an unreadable keys file), 3 DECRYPTION_FAILED (no
key given, none of the given ones opens the file, or encrypted data
changed), 4 BACKUP_CORRUPTED, 5 UNSAFE_ARCHIVE (extract refused a member),
6 a file problem (not found, exists already, permission, disk full).

Only the engine and the standard library are imported here: never Django.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

from .crypto import (DEFAULT_ITERATIONS, HEADER_SIZE, MAGIC, MAX_ITERATIONS, MIN_ITERATIONS, DecryptingReader,
                     EncryptionSpec, Keyring, parse_header)
from .errors import (BACKUP_CORRUPTED, BACKUP_NOT_FOUND, DECRYPTION_FAILED, DESTINATION_EXISTS,
                     INSUFFICIENT_DISK_SPACE, INVALID_ENCRYPTION_KEY, INVALID_SETTING, IO_ERROR,
                     PERMISSION_DENIED, SERVER_DIRECTORY_NOT_FOUND, UNSAFE_ARCHIVE, EngineError,
                     from_os_error)

EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_USAGE = 2
EXIT_DECRYPTION = 3
EXIT_CORRUPTED = 4
EXIT_UNSAFE = 5
EXIT_FILE = 6

EXIT_CODES = {
    DECRYPTION_FAILED: EXIT_DECRYPTION,
    BACKUP_CORRUPTED: EXIT_CORRUPTED,
    UNSAFE_ARCHIVE: EXIT_UNSAFE,
    INVALID_ENCRYPTION_KEY: EXIT_USAGE,
    INVALID_SETTING: EXIT_USAGE,
    BACKUP_NOT_FOUND: EXIT_FILE,
    DESTINATION_EXISTS: EXIT_FILE,
    PERMISSION_DENIED: EXIT_FILE,
    INSUFFICIENT_DISK_SPACE: EXIT_FILE,
    IO_ERROR: EXIT_FILE,
    SERVER_DIRECTORY_NOT_FOUND: EXIT_FILE,
}

KEYS_FORMAT = "mcsite-keys"  # what ``manage.py export_keys`` writes (docs/format.md)
KEYS_VERSION = 1
_COPY_CHUNK = 1024 * 1024


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


# --- secrets ------------------------------------------------------------------------------------

def load_keys_file(path: str) -> list[EncryptionSpec]:
    """The secrets of an export (``manage.py export_keys``), current first, as
    ``EncryptionSpec``s for a ``Keyring``. Raises ``UsageError`` naming the
    problem when the file is unreadable or not an export this version reads."""
    return specs_from_document(read_keys_document(path), where=path)


def read_keys_document(path: str):
    """The JSON of a keys file; UsageError when it cannot be read or is not JSON."""
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read(16 * 1024 * 1024))
    except OSError as exc:
        raise UsageError(f"cannot read the keys file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"the keys file {path} is not JSON: {exc}") from None


def specs_from_document(doc, *, where: str) -> list[EncryptionSpec]:
    """The secrets of an export document already read (``load_keys_file``;
    ``manage.py import_keys``), current first. UsageError names the problem."""
    path = where
    if not isinstance(doc, dict) or doc.get("format") != KEYS_FORMAT or not isinstance(doc.get("keys"), list):
        raise UsageError(f"{path} is not an mcsite keys export (format {KEYS_FORMAT!r} with a 'keys' list)")
    if not isinstance(doc.get("version"), int) or doc["version"] > KEYS_VERSION:
        raise UsageError(f"{path}: keys export version {doc.get('version')!r} is not supported "
                         f"(this tool reads up to {KEYS_VERSION})")
    specs = []
    for index, entry in enumerate(doc["keys"]):
        if not isinstance(entry, dict):
            raise UsageError(f"{path}: keys[{index}] is not an object")
        mode, secret = entry.get("mode"), entry.get("secret")
        try:
            if mode == "password":
                # Reading takes the count from each file's header; this one only has to be valid.
                iterations = entry.get("iterations")
                if not isinstance(iterations, int) or not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
                    iterations = DEFAULT_ITERATIONS
                specs.append(EncryptionSpec.from_password(secret, iterations))
            elif mode == "key":
                specs.append(EncryptionSpec.from_key(secret))
            else:
                raise UsageError(f"{path}: keys[{index}] has an unknown mode {mode!r}")
        except (EngineError, TypeError, ValueError) as exc:
            raise UsageError(f"{path}: keys[{index}] ({entry.get('fingerprint', '?')}): "
                             f"{getattr(exc, 'message', exc)}") from None
    return specs


def _read_password_file(path: str) -> str:
    try:
        if path == "-":
            text = sys.stdin.readline()
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.readline()
    except OSError as exc:
        raise UsageError(f"cannot read the password file {path}: {exc.strerror or exc}") from None
    password = text.rstrip("\r\n")
    if not password:
        raise UsageError(f"the password file {path} is empty")
    return password


def build_keyring(args) -> Keyring:
    """Every secret given on the command line, in the order given."""
    specs = []
    try:
        for key in args.key or ():
            specs.append(EncryptionSpec.from_key(key))
        passwords = list(args.password or ()) + [_read_password_file(p) for p in args.password_file or ()]
        for password in passwords:
            # The iteration count only matters when encrypting; reading takes it from the file header.
            specs.append(EncryptionSpec.from_password(password, DEFAULT_ITERATIONS))
    except EngineError as exc:
        raise UsageError(exc.message) from None
    for path in args.keys_file or ():
        specs.extend(load_keys_file(path))
    return Keyring(specs)


def _encryption_header(path: str):
    """The encryption header of ``path``, or None when it is not encrypted."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_SIZE)
    except FileNotFoundError:
        raise EngineError(BACKUP_NOT_FOUND, "Backup file not found", path=path) from None
    except OSError as exc:
        raise from_os_error(exc, path=path) from exc
    return parse_header(head) if head.startswith(MAGIC) else None




def _need_secret(path: str, keyring: Keyring):
    """The file's encryption header (None when not encrypted) once one of the
    given secrets is known to open it: DECRYPTION_FAILED otherwise. After
    this, a chunk that fails is a changed file, never a wrong secret."""
    header = _encryption_header(path)
    if header is None:
        return None
    if not len(keyring):
        raise EngineError(DECRYPTION_FAILED, f"the backup is encrypted ({header.mode_name} mode); give "
                          "--key, --password, --password-file or --keys-file")
    if keyring.match(header) is None:  # one KDF per candidate of the file's mode, cached for the read
        given = sum(1 for spec in keyring.specs if spec.mode == header.mode)
        what = header.mode_name
        if not given:
            raise EngineError(DECRYPTION_FAILED, f"this file was encrypted with a {what} and no {what} was "
                              f"given (use --{what}{'-file' if what == 'password' else ''} or --keys-file)")
        raise EngineError(DECRYPTION_FAILED, f"wrong {what}: none of the {given} {what}(s) given opens this "
                          f"file (its header's key check value is {header.fingerprint})")
    return header


# --- commands -----------------------------------------------------------------------------------

def _first_reason(result) -> str:
    if result.skipped:
        return result.details.get("reason", "")
    if result.errors:
        more = len(result.errors) - 1
        return result.errors[0] + (f" (and {more} more)" if more > 0 else "")
    return "; ".join(result.warnings[:1])


def cmd_verify(args, out) -> int:
    from .verify import verify_backup

    keyring = build_keyring(args)
    _need_secret(args.file, keyring)
    report = verify_backup(args.file, expected_sha256=args.sha256, keyring=keyring or None,
                           check_world=not args.no_world, restore_test=args.restore_test)
    if args.json:
        json.dump(report.to_dict(), out, indent=2, sort_keys=True, default=str)
        out.write("\n")
    else:
        fmt = ("encrypted, " if report.encrypted else "") + (report.compression or "unknown compression")
        out.write(f"file     {report.path}\n")
        out.write(f"format   {fmt}\n")
        out.write(f"sha256   {report.sha256}\n")
        if report.file_count is not None:
            out.write(f"files    {report.file_count}\n")
        if report.world_name or report.minecraft_version:
            out.write(f"world    {report.world_name or '?'} (Minecraft {report.minecraft_version or '?'})\n")
        for name, result in report.methods.items():
            status = "skipped" if result.skipped else "passed" if result.ok else "FAILED"
            reason = _first_reason(result)
            out.write(f"{name:<18} {status:<8} {reason}".rstrip() + "\n")
            if not result.skipped and not result.ok:
                for error in result.errors[1:10]:
                    out.write(f"{'':<27} {error}\n")
        out.write(f"quality  {report.quality_score} {report.quality_level}\n")
        out.write(f"result   {'PASSED' if report.ok else 'FAILED'}\n")
    if report.ok:
        return EXIT_OK
    code = report.methods["archive_integrity"].details.get("error_code")
    return EXIT_CODES.get(code, EXIT_VERIFY_FAILED) if code in (DECRYPTION_FAILED, BACKUP_CORRUPTED,
                                                                UNSAFE_ARCHIVE) else EXIT_VERIFY_FAILED


def cmd_extract(args, out) -> int:
    from .extract import extract_to_staging, normalize_selection

    keyring = build_keyring(args)
    _need_secret(args.file, keyring)
    target = os.path.abspath(args.to)
    if os.path.lexists(target):
        if os.path.islink(target) or not os.path.isdir(target):
            raise EngineError(DESTINATION_EXISTS, "--to names something that is not a folder", path=target)
        if os.listdir(target):
            raise EngineError(DESTINATION_EXISTS, "--to names a folder that is not empty; extract into a new "
                              "or empty folder", path=target)
    try:
        only = normalize_selection(args.path) if args.path else None
    except ValueError as exc:
        raise UsageError(f"--path: {exc}") from None
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    except OSError as exc:
        raise from_os_error(exc, path=os.path.dirname(target)) from exc
    result = extract_to_staging(args.file, target, keyring=keyring or None, only=only)
    try:
        if os.path.isdir(target) and not os.path.islink(target):
            os.rmdir(target)  # empty (checked above); fails, leaving it, if something appeared since
        os.rename(result.staging_dir, target)
    except OSError as exc:
        shutil.rmtree(result.staging_dir, ignore_errors=True)
        raise from_os_error(exc, path=target) from exc
    checked = "checked against the manifest" if result.manifest_checked else "no manifest to check against"
    out.write(f"extracted {result.file_count} files ({result.total_bytes} bytes), "
              f"{result.directory_count} folders, {result.symlink_count} symlinks into {target} "
              f"({checked})\n")
    return EXIT_OK


def cmd_decrypt(args, out) -> int:
    keyring = build_keyring(args)
    header = _need_secret(args.file, keyring)
    if header is None:
        raise UsageError(f"{args.file} is not encrypted: nothing to decrypt (it is already a compressed tar)")
    output = args.output
    if output is None:
        base = args.file[:-4] if args.file.endswith(".enc") else args.file + ".dec"
        output = base
    to_stdout = output == "-"
    if not to_stdout:
        output = os.path.abspath(output)
        if os.path.lexists(output):
            raise EngineError(DESTINATION_EXISTS, "the output file exists already", path=output)
    try:
        source = open(args.file, "rb", buffering=0)
    except OSError as exc:
        raise from_os_error(exc, path=args.file) from exc
    tmp = None
    try:
        reader = DecryptingReader(source, keyring)  # DECRYPTION_FAILED here when no secret matches
        if to_stdout:
            sink = sys.stdout.buffer
        else:
            fd, tmp = tempfile.mkstemp(prefix=".partial-" + os.path.basename(output) + "-",
                                       dir=os.path.dirname(output))
            sink = os.fdopen(fd, "wb")
        written = 0
        try:
            while chunk := reader.read(_COPY_CHUNK):
                sink.write(chunk)
                written += len(chunk)
            sink.flush()
            if tmp is not None:
                os.fsync(sink.fileno())
        finally:
            if tmp is not None:
                sink.close()
        if tmp is not None:
            # Only now is the stream known to be whole (the final chunk authenticated).
            if os.path.lexists(output):
                raise EngineError(DESTINATION_EXISTS, "the output file exists already", path=output)
            os.rename(tmp, output)
            tmp = None
    except OSError as exc:
        raise from_os_error(exc, path=output) from exc
    finally:
        source.close()
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    if not to_stdout:
        out.write(f"decrypted {written} bytes into {output} (a compressed tar; its compression "
                  f"is known by its first bytes)\n")
    return EXIT_OK


def cmd_list(args, out) -> int:
    from .reader import ArchiveStream

    keyring = build_keyring(args)
    _need_secret(args.file, keyring)
    members = []
    with ArchiveStream(args.file, keyring=keyring or None) as stream:
        for info, name in stream.members():
            if info.isfile():
                members.append({"path": name, "type": "file", "size": info.size})
            elif info.isdir():
                members.append({"path": name, "type": "dir", "size": 0})
            elif info.issym():
                members.append({"path": name, "type": "symlink", "size": 0, "target": info.linkname})
            else:
                members.append({"path": name, "type": "other", "size": info.size})
        stream.finish()
        stream.raise_problems()
        manifest, fmt = stream.manifest, stream.format
    if manifest is not None:
        # The sizes and hashes the backup recorded when it was made.
        entries = [{"path": f["path"], "type": "file", "size": f["size"], "sha256": f["sha256"]}
                   for f in manifest["files"]]
        entries += [{"path": s["path"], "type": "symlink", "size": 0, "target": s["target"]}
                    for s in manifest.get("symlinks", [])]
        entries.sort(key=lambda e: e["path"])
    else:
        entries = [m for m in members if m["type"] != "dir"]
    if args.json:
        doc = {"file": os.path.abspath(args.file), "encrypted": fmt.encrypted, "compression": fmt.compression,
               "manifest": manifest is not None,
               "created": manifest.get("created") if manifest else None, "members": entries}
        json.dump(doc, out, indent=2)
        out.write("\n")
        return EXIT_OK
    for entry in entries:
        if entry["type"] == "symlink":
            out.write(f"{'link':>14}  {entry['path']} -> {entry['target']}\n")
        else:
            out.write(f"{entry['size']:>14}  {entry['path']}\n")
    files = [e for e in entries if e["type"] == "file"]
    source = f"manifest of {manifest.get('created')}" if manifest else "tar headers (no mcsite manifest)"
    out.write(f"{len(files)} files, {sum(e['size'] for e in files)} bytes "
              f"({'encrypted, ' if fmt.encrypted else ''}{fmt.compression}; from the {source})\n")
    return EXIT_OK


# --- the parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backups.engine",
        description="Open an mcsite backup file without the site or its database: verify it, list it, "
                    "extract it or decrypt it. See docs/format.md.",
        epilog="exit codes: 0 done, 1 verification failed, 2 usage error, 3 DECRYPTION_FAILED, "
               "4 BACKUP_CORRUPTED, 5 UNSAFE_ARCHIVE, 6 file not found/exists/permission/disk full",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{verify,extract,decrypt,list}")
    secrets = argparse.ArgumentParser(add_help=False)
    group = secrets.add_argument_group("secrets (any number; the file's header picks the right one)")
    group.add_argument("--key", action="append", metavar="B64", help="a 32-byte key, base64")
    group.add_argument("--password", action="append", metavar="PW",
                       help="a password (visible to other local users in the process list: "
                            "prefer --password-file)")
    group.add_argument("--password-file", action="append", metavar="F",
                       help="a file whose first line is the password ('-': standard input)")
    group.add_argument("--keys-file", action="append", metavar="EXPORTED.json",
                       help="the JSON written by manage.py export_keys (every key and password the site had)")

    verify = sub.add_parser("verify", parents=[secrets], help="check a backup, print each method's result")
    verify.add_argument("file", metavar="FILE")
    verify.add_argument("--sha256", metavar="HEX",
                        help="the checksum the backup should have (e.g. from its sidecar)")
    verify.add_argument("--no-world", action="store_true", help="skip the Minecraft world validation")
    verify.add_argument("--restore-test", action="store_true",
                        help="also extract to a temporary folder beside FILE and compare every file")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=cmd_verify)

    extract = sub.add_parser("extract", parents=[secrets],
                             help="extract into a new or empty folder, with the restore's safety rules")
    extract.add_argument("file", metavar="FILE")
    extract.add_argument("--to", required=True, metavar="DIR",
                         help="the folder to create (or an empty one); a non-empty folder is refused")
    extract.add_argument("--path", action="append", metavar="P",
                         help="only this path of the server folder (and what is below it); repeatable")
    extract.set_defaults(func=cmd_extract)

    decrypt = sub.add_parser("decrypt", parents=[secrets], help="write the decrypted compressed tar")
    decrypt.add_argument("file", metavar="FILE")
    decrypt.add_argument("-o", "--output", metavar="OUT",
                         help="where to write it ('-': standard output); default FILE without .enc")
    decrypt.set_defaults(func=cmd_decrypt)

    listing = sub.add_parser("list", parents=[secrets], help="list the files with their sizes")
    listing.add_argument("file", metavar="FILE")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(func=cmd_list)
    return parser


def main(argv=None, out=None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args, out)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EngineError as exc:
        where = f" ({exc.path})" if exc.path else ""
        message = exc.message
        if exc.code == DECRYPTION_FAILED:
            message = message.removeprefix("Decryption failed: ")
        print(f"{exc.code}: {message}{where}", file=sys.stderr)
        return EXIT_CODES.get(exc.code, EXIT_FILE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head` closed the pipe: stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
