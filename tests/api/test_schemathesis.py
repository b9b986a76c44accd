"""Schemathesis against /api/schema with an authenticated user: no 500, no
undocumented status code or content type, no response that breaks the
schema. Bounded: a few examples per operation, no deadline."""

import pytest
import schemathesis
from django.core.cache import cache
from hypothesis import HealthCheck, settings
from tests.conftest import issue_token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mcsite.wsgi import application

# Building the schema touches no database, so it can load at collection time.
schema = schemathesis.openapi.from_wsgi("/api/schema?format=json", application)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """Requests go through the raw WSGI app, whose request signals would close
    the test's database connection (Django's test client unhooks them too)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def auth_header(alice, make_server, settings):
    make_server(alice, "fuzzed", world=False)
    return {"Authorization": f"Bearer {issue_token(alice)}"}


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, auth_header):
    if case.path.endswith("/download"):
        pytest.skip("binary download: covered by its own tests")
    cache.clear()  # throttles must not turn fuzzing into 429s
    case.call_and_validate(headers=auth_header, checks=CHECKS)
