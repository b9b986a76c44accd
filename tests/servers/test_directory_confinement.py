"""A server's directory must resolve (symlinks followed) inside the servers
root; anything else is 400 INVALID_DIRECTORY and creates nothing."""

import os

import pytest

from servers.models import Server

pytestmark = pytest.mark.django_db


def _create(api, directory):
    return api.post("/api/servers", {"name": "x", "directory": directory}, format="json")


def _assert_refused(response):
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "INVALID_DIRECTORY"
    assert not Server.objects.exists()


def test_absolute_path_outside_the_root_is_refused(alice_api, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _assert_refused(_create(alice_api, str(outside)))
    _assert_refused(_create(alice_api, "/etc"))


def test_dot_dot_escaping_the_root_is_refused(alice_api, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    _assert_refused(_create(alice_api, "../elsewhere"))
    _assert_refused(_create(alice_api, "a/../../elsewhere"))


def test_symlink_pointing_out_is_refused(alice_api, settings, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", settings.MCSITE_SERVERS_ROOT / "sneaky")
    _assert_refused(_create(alice_api, "sneaky"))


def test_the_root_itself_and_missing_folders_are_refused(alice_api, settings):
    _assert_refused(_create(alice_api, str(settings.MCSITE_SERVERS_ROOT)))
    _assert_refused(_create(alice_api, "."))
    _assert_refused(_create(alice_api, "does-not-exist"))


def test_absolute_path_inside_and_symlink_inside_are_accepted(alice_api, settings, make_server_dir):
    folder = make_server_dir("real", world=False)
    other = make_server_dir("other", world=False)
    os.symlink(folder, settings.MCSITE_SERVERS_ROOT / "alias")
    response = alice_api.post("/api/servers", {"name": "a", "directory": "alias"}, format="json")
    assert response.status_code == 201
    assert response.json()["data"]["directory"] == "real"
    response = alice_api.post("/api/servers", {"name": "b", "directory": str(other)}, format="json")
    assert response.status_code == 201
    assert response.json()["data"]["directory"] == "other"


def test_a_folder_used_by_another_server_is_refused_like_a_missing_one(alice, alice_api, bob_api, make_server,
                                                                       make_server_dir):
    make_server(alice, "alice-world")
    make_server_dir("outer/inner", world=False)
    Server.objects.create(owner=alice, name="inner", directory="outer/inner")
    missing = bob_api.post("/api/servers", {"name": "x", "directory": "no-such-folder"}, format="json").json()
    for directory in ("alice-world", "alice-world/world", "outer", "../servers/alice-world"):
        response = bob_api.post("/api/servers", {"name": "x", "directory": directory}, format="json")
        assert response.status_code == 400 and response.json()["code"] == "INVALID_DIRECTORY", directory
        assert response.json()["error"] == missing["error"]  # taken and missing look the same
    assert alice_api.post("/api/servers", {"name": "twice", "directory": "alice-world"},
                          format="json").status_code == 400
    assert Server.objects.count() == 2


def test_mcsites_own_folders_cannot_be_a_server(alice_api, settings):
    settings.MCSITE_BACKUP_ROOT = settings.MCSITE_SERVERS_ROOT / "backups-inside"
    settings.MCSITE_BACKUP_ROOT.mkdir()
    _assert_refused(_create(alice_api, "backups-inside"))


def test_update_cannot_move_a_server_outside(alice_api, alice, make_server, tmp_path):
    server = make_server(alice, "inside", world=False)
    (tmp_path / "elsewhere").mkdir()
    response = alice_api.patch(f"/api/servers/{server.pk}", {"directory": "../elsewhere"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_DIRECTORY"
    server.refresh_from_db()
    assert server.directory == "inside"
