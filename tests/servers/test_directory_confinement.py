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
    os.symlink(folder, settings.MCSITE_SERVERS_ROOT / "alias")
    response = alice_api.post("/api/servers", {"name": "a", "directory": str(folder)}, format="json")
    assert response.status_code == 201
    assert response.json()["data"]["directory"] == "real"
    response = alice_api.post("/api/servers", {"name": "b", "directory": "alias"}, format="json")
    assert response.status_code == 201
    assert response.json()["data"]["directory"] == "real"


def test_update_cannot_move_a_server_outside(alice_api, alice, make_server, tmp_path):
    server = make_server(alice, "inside", world=False)
    (tmp_path / "elsewhere").mkdir()
    response = alice_api.patch(f"/api/servers/{server.pk}", {"directory": "../elsewhere"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_DIRECTORY"
    server.refresh_from_db()
    assert server.directory == "inside"
