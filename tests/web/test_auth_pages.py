"""Logging in and out, anonymous visitors sent to the login page, and the
404/500 pages a person sees instead of a stack trace."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _page_urls(server_id: int) -> list[str]:
    return [
        "/servers/", "/servers/new/", f"/servers/{server_id}/delete/", f"/backup/{server_id}",
        f"/backup/{server_id}/restore?backup=x.tar.gz", f"/backup/{server_id}/backups/1/progress",
        f"/backup/{server_id}/restores/1", f"/backup/{server_id}/restores/1/progress",
    ]


def test_it_sends_anonymous_visitors_to_the_login_page(client, alices_server):
    for url in _page_urls(alices_server.pk):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_it_refuses_anonymous_posts_without_changing_anything(client, alices_server):
    from backups.models import BackupRecord
    from servers.models import Server

    for url in (f"/backup/{alices_server.pk}/trigger", f"/servers/{alices_server.pk}/delete/",
                f"/servers/{alices_server.pk}/start/", f"/backup/{alices_server.pk}/schedule"):
        assert client.post(url).status_code == 302, url
    assert BackupRecord.objects.count() == 0 and Server.objects.filter(pk=alices_server.pk).exists()


def test_it_logs_in_and_lands_on_the_server_list(client, alice):
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b'name="password"' in page.content
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302 and response["Location"] == "/servers/"
    assert client.get("/servers/").status_code == 200


def test_it_shows_a_readable_error_for_a_wrong_password(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert b'value="alice"' in response.content  # what the user typed is kept


def test_it_logs_out_with_a_post(alice_web):
    response = alice_web.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert alice_web.get("/servers/").status_code == 302


def test_the_root_goes_to_the_server_list(alice_web):
    response = alice_web.get("/")
    assert response.status_code == 302 and response["Location"] == "/servers/"


def test_an_unknown_page_is_a_friendly_404(alice_web):
    response = alice_web.get("/backup/999999")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Not found" in body and "Back to your servers" in body


@pytest.mark.urls("tests.web.crash_urls")
def test_a_crash_is_a_friendly_500_without_a_stack_trace(alice):
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body
    assert "Traceback" not in body and "secret stack trace" not in body
