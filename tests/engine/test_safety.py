"""Member safety: verify flags exactly the archives restore refuses (one rule set, safety.py),
symlink chains are resolved through the archive's own links, and backups never store a link
that really resolves outside the folder."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from backups.engine import EngineError, create_archive, extract_to_staging, verify_backup
from backups.engine.safety import MAX_SYMLINK_HOPS, LinkIndex, resolve_symlink

from .conftest import snapshot


def _tar(path: Path, members: list) -> Path:
    """members: (name, kind, data or link target); kinds: file dir sym lnk chr fifo."""
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE,
             "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            if "\0" in name:
                info.pax_headers = {"path": name}  # the ustar name field would stop at the NUL
            info.type = types[kind]
            data = None
            if kind == "file":
                data = extra if extra is not None else b"data"
                info.size = len(data)
            elif kind in ("sym", "lnk"):
                info.linkname = extra
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def F(name, data=None):
    return (name, "file", data)


def D(name):
    return (name, "dir", None)


def S(name, target):
    return (name, "sym", target)


def H(name, target):
    return (name, "lnk", target)


HOSTILE = {
    "absolute_path": [F("ok.txt"), F("/tmp/mcsite-evil-absolute")],
    "dotdot": [F("ok.txt"), F("../evil.txt")],
    "dotdot_inside_path": [F("world/../../evil.txt")],
    "drive_letter": [F("C:/evil.txt")],
    "nul_in_name": [F("evil\0.txt")],
    "name_longer_than_path_max": [F("d/" * 2100 + "x.txt")],
    "symlink_out": [S("link", "../../etc")],
    "symlink_absolute": [S("link", "/etc/passwd")],
    "symlink_empty_target": [S("link", "")],
    "symlink_chain_out": [D("a"), S("a/b", ".."), S("a/c", "b/..")],
    "symlink_chain_out_reversed": [D("a"), S("a/c", "b/.."), S("a/b", "..")],
    "symlink_chain_through_a_deeper_link": [D("x"), D("x/y"), S("x/y/up", "../.."), S("top", "x/y/up/..")],
    "symlink_loop": [S("p", "q"), S("q", "p")],
    "symlink_to_itself_below": [S("self", "self/x")],
    "symlink_chain_too_long": [S(f"l{n}", f"l{n + 1}") for n in range(MAX_SYMLINK_HOPS + 1)]
    + [F(f"l{MAX_SYMLINK_HOPS + 1}")],
    "file_through_symlink": [S("d", "sub"), F("d/x.txt")],
    "file_through_file": [F("d"), F("d/x.txt")],
    "symlink_over_a_used_folder": [F("d/x.txt"), S("d", "elsewhere")],
    "file_over_a_used_folder": [F("d/x.txt"), F("d")],
    "root_named_by_a_file": [F("./")],
    "hardlink_out": [H("hl", "../outside.txt")],
    "hardlink_absolute": [H("hl", "/etc/passwd")],
    "hardlink_to_a_symlink": [S("s", "x"), H("hl", "s")],
    "hardlink_to_a_folder": [D("d"), H("hl", "d")],
    "hardlink_forward": [H("hl", "later.txt"), F("later.txt")],
    "char_device": [("dev", "chr", None)],
    "fifo": [("pipe", "fifo", None)],
    "manifest_not_last": [F(".mcsite-manifest.json", b'{"format": "mcsite-backup-manifest", "files": []}'),
                          F("evil.txt")],
    "manifest_named_symlink": [S(".mcsite-manifest.json", "x")],
    "duplicate_file": [F("a.txt"), F("a.txt", b"other")],
    "duplicate_folder": [D("d"), D("d")],
}

BENIGN = {
    "symlink_inside": [F("world/level.txt"), S("current", "world/level.txt"), S("world/up", "..")],
    "symlink_chain_inside": [D("a"), D("a/b"), S("a/b/up", ".."), S("a/c", "b/up/b"), S("top", "a/c/../..")],
    "dangling_symlink_inside": [S("later", "not/there/yet")],
    "hardlink_inside": [F("world/level.txt"), H("world/copy.txt", "./world/level.txt")],
    "dot_slash_root_and_folder_after_its_files": [D("./"), F("./d/x.txt"), D("./d")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_verify_flags_exactly_what_extract_refuses(tmp_path, case):
    area = tmp_path / "area"
    area.mkdir()
    (tmp_path / "outside.txt").write_text("outside")
    archive = _tar(tmp_path / "evil.tar.gz", HOSTILE[case])

    integrity = verify_backup(archive).methods["archive_integrity"]
    assert not integrity.ok
    assert integrity.details["error_code"] == "UNSAFE_ARCHIVE"
    assert integrity.details["unsafe_members"], integrity.errors
    for name in integrity.details["unsafe_members"]:
        assert any(e.startswith(f"{name}: ") for e in integrity.errors)

    before = snapshot(tmp_path)
    with pytest.raises(EngineError) as info:
        extract_to_staging(archive, area / "server")
    assert info.value.code == "UNSAFE_ARCHIVE"
    assert info.value.path in integrity.details["unsafe_members"]  # the same member, the same rule
    assert snapshot(tmp_path) == before
    assert not os.path.exists("/tmp/mcsite-evil-absolute")


@pytest.mark.parametrize("case", sorted(BENIGN))
def test_safe_archives_pass_both(tmp_path, case):
    archive = _tar(tmp_path / "ok.tar.gz", BENIGN[case])
    integrity = verify_backup(archive).methods["archive_integrity"]
    assert integrity.ok, integrity.errors
    extract_to_staging(archive, tmp_path / "server")


def test_symlink_chain_names_the_escaping_link_and_not_the_safe_one(tmp_path):
    archive = _tar(tmp_path / "chain.tar.gz", [D("a"), S("a/b", ".."), S("a/c", "b/..")])
    integrity = verify_backup(archive).methods["archive_integrity"]
    assert integrity.details["unsafe_members"] == ["a/c"]
    assert integrity.errors == [
        "a/c: symlink resolves outside the folder (b/..) (restore would refuse this archive)"]
    with pytest.raises(EngineError, match="resolves outside the folder") as info:
        extract_to_staging(archive, tmp_path / "server")
    assert info.value.path == "a/c"


def test_resolve_symlink_follows_links_like_the_kernel(tmp_path):
    links = {"a/b": "..", "a/c": "b/..", "x/y/up": "../..", "deep": "x/y"}
    index = LinkIndex(links)
    assert resolve_symlink("a/b", "..", index) == ""  # the folder itself: inside
    with pytest.raises(ValueError, match="outside"):
        resolve_symlink("a/c", "b/..", index)
    assert resolve_symlink("l", "deep/up/a", index) == "a"
    # the same answers as the kernel on a real folder
    root = tmp_path / "root"
    for name, target in links.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / name)
    assert os.path.realpath(root / "a" / "b") == str(root)
    assert os.path.realpath(root / "a" / "c") == str(tmp_path)
    assert os.path.realpath(root / "deep" / "up" / "a") == str(root / "a")


# --- the backup side -------------------------------------------------------------------------------

def test_backup_skips_links_that_really_resolve_outside(tmp_path, backups_dir):
    src = tmp_path / "srv"
    (src / "a").mkdir(parents=True)
    (src / "world").mkdir()
    (src / "world" / "level.txt").write_text("x")
    os.symlink("..", src / "a" / "b")  # the folder itself: fine
    os.symlink("b/..", src / "a" / "c")  # lexically a/, really the folder's parent
    os.symlink("b/../srv/world", src / "a" / "d")  # back in through the folder's own name: still outside
    os.symlink(str(src / "a"), src / "abs_in")  # absolute inside, stored relative
    os.symlink("abs_in/b/world/level.txt", src / "via_abs")  # resolves inside through two links
    os.symlink("loop2", src / "loop1")
    os.symlink("loop1", src / "loop2")

    result = create_archive(src, backups_dir / "b.tar.gz")
    skipped = {s["path"]: s["reason"] for s in result.skipped}
    assert skipped == {
        "a/c": "symlink points outside the folder (b/..)",
        "a/d": "symlink points outside the folder (b/../srv/world)",
        "loop1": "symlink loop or chain of more than 40 links (loop2)",
        "loop2": "symlink loop or chain of more than 40 links (loop1)",
    }
    assert result.symlink_count == 3
    assert verify_backup(result.path).ok
    staged = Path(extract_to_staging(result.path, tmp_path / "restored").staging_dir)
    assert os.readlink(staged / "abs_in") == "a"
    assert (staged / "via_abs").read_text() == "x"


def test_backup_resolves_kept_links_through_kept_links_only(tmp_path, backups_dir):
    """An excluded link is a plain name in the archive: a link that stays inside on disk only
    thanks to it would be refused at restore, so it is not archived either."""
    src = tmp_path / "srv"
    (src / "a").mkdir(parents=True)
    os.symlink("..", src / "a" / "b")
    os.symlink("deep/er/est", src / "e")  # excluded
    os.symlink("b/e/../..", src / "a" / "c")  # on disk: the folder, e's target, up twice: deep/ — inside

    result = create_archive(src, backups_dir / "b.tar.gz", exclude=["e"])
    assert result.skipped == [{"path": "a/c", "reason": "symlink points outside the folder (b/e/../..)"}]
    assert verify_backup(result.path).ok
    extract_to_staging(result.path, tmp_path / "restored")


def _naive_rules(members: list) -> list:
    """The path rules the obvious way (every folder path kept as a string), for comparison:
    for each (name, kind) in order, the problem or None; refused members are not recorded."""
    kinds, folders, out = {}, set(), []
    for name, kind in members:
        parts = name.split("/")
        ancestors = ["/".join(parts[:d]) for d in range(1, len(parts))]
        if name in kinds:
            problem = "stored twice"
        elif any(kinds.get(a) in ("file", "sym") for a in ancestors):
            problem = "goes through"
        elif kind != "dir" and name in folders:
            problem = "used as a folder"
        else:
            problem = None
            kinds[name] = kind
            folders.update(ancestors)
        out.append(problem)
    return out


def test_path_rules_agree_with_the_obvious_implementation_on_random_archives():
    import random

    from backups.engine.safety import MemberRules

    rng = random.Random(11)
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE}
    expected_words = {"stored twice": "stored twice", "goes through": "goes through",
                      "used as a folder": "used as a folder"}
    for _ in range(3000):
        members = []
        for _ in range(rng.randrange(1, 12)):
            name = "/".join(rng.choice("abc") for _ in range(rng.randrange(1, 5)))
            members.append((name, rng.choice(["file", "dir", "sym"])))
        rules = MemberRules()
        got = []
        for name, kind in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = types[kind], "x" if kind == "sym" else ""
            try:
                rules.check(info, name)
                got.append(None)
            except EngineError as exc:
                got.append(next(word for word in expected_words if word in exc.message))
        assert got == _naive_rules(members), members


def test_member_names_are_capped_in_total(tmp_path, monkeypatch):
    """Names are kept per member (to compare with the manifest, to find duplicates): long
    compressible names must not grow that without bound. The real cap is 256 MiB."""
    from backups.engine import safety

    monkeypatch.setattr(safety, "MAX_NAME_BYTES", 1000)
    monkeypatch.setattr(safety, "MEMBER_COST_BYTES", 0)
    archive = _tar(tmp_path / "names.tar.gz", [F(f"{n:03d}-" + "n" * 90) for n in range(11)])
    integrity = verify_backup(archive).methods["archive_integrity"]
    assert integrity.details["unsafe_members"] == [f"010-{'n' * 90}"]
    assert "more than 0 MiB of member names" in integrity.errors[0]
    with pytest.raises(EngineError, match="of member names") as info:
        extract_to_staging(archive, tmp_path / "server")
    assert info.value.code == "UNSAFE_ARCHIVE"


def test_members_are_capped_in_number_too_however_short_their_names(tmp_path, monkeypatch):
    """A million empty members is 1.6 MB as .tar.zst and took ~470 MiB to
    verify: each member costs bookkeeping of its own, charged to the same
    budget (the real cap is about a million members)."""
    from backups.engine import safety

    monkeypatch.setattr(safety, "MAX_NAME_BYTES", 4 * (safety.MEMBER_COST_BYTES + 1))
    archive = _tar(tmp_path / "many.tar.gz", [F(f"{n}") for n in range(6)])
    integrity = verify_backup(archive).methods["archive_integrity"]
    assert integrity.details["unsafe_members"][0] == "4"
    assert "members at most" in integrity.errors[0]
    with pytest.raises(EngineError, match="members at most"):
        extract_to_staging(archive, tmp_path / "server")
