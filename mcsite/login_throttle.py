"""Login throttling for every door that checks a password — the web form
(/accounts/login/), the admin (/admin/login/) and POST /api/auth/token —
built on django-axes (its backend refuses a locked login before the password
is checked, its middleware swaps the web page for ours).

Failed logins are counted per (username, client address): after
MCSITE_LOGIN_FAILURE_LIMIT of them that username is locked *from that
address* — somebody guessing elsewhere cannot lock the real user out. A higher
cap, MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS, counts every failure from one
address whatever the username, so trying many usernames does not help either.
A failure older than MCSITE_LOGIN_COOLOFF_MINUTES stops counting; a locked
login that is tried again counts too (the lock lasts while the guessing goes
on). A successful login clears that user's count from that address. The
client address is mcsite.client_ip's (the socket, or the trusted proxy's
X-Forwarded-For). Each lockout is audited once: action `auth.lockout`."""

import logging
import math
from datetime import timedelta

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db.models import Sum
from django.dispatch import receiver
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

from mcsite.audit import audit
from mcsite.client_ip import login_client
from mcsite.errors import ErrorCode

logger = logging.getLogger("mcsite.auth")

SCOPE_USER = "username_and_address"
SCOPE_ADDRESS = "address"


def failure_limit(request=None, credentials=None) -> int:
    """AXES_FAILURE_LIMIT: failures per (username, address) that lock."""
    return settings.MCSITE_LOGIN_FAILURE_LIMIT


def cool_off(request=None) -> timedelta:
    """AXES_COOLOFF_TIME: how long a failure keeps counting."""
    return timedelta(minutes=settings.MCSITE_LOGIN_COOLOFF_MINUTES)


def door(request) -> str:
    path = getattr(request, "path", "") or ""
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "web"


def _total(attempts) -> int:
    return attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0


class LoginThrottleHandler(AxesDatabaseHandler):
    """Axes' database handler with two limits instead of one: axes compares
    get_failures() with AXES_FAILURE_LIMIT, so the per-address cap is folded
    into that number (reaching it counts as reaching the per-user limit)."""

    def counts(self, request, credentials=None) -> tuple[int, int]:
        """(failures of this username from this address, failures from this address)."""
        recent = AccessAttempt.objects.filter(
            ip_address=request.axes_ip_address, attempt_time__gte=get_cool_off_threshold(request)
        )
        username = get_client_username(request, credentials)
        return _total(recent.filter(username=username)), _total(recent)

    def get_failures(self, request, credentials=None) -> int:
        pair, address = self.counts(request, credentials)
        limit = failure_limit(request, credentials)
        scope = SCOPE_ADDRESS if address >= settings.MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS else SCOPE_USER
        request.mcsite_login_state = {"failures": pair, "address_failures": address, "scope": scope}
        return max(pair, limit) if scope == SCOPE_ADDRESS else pair

    def is_locked(self, request, credentials=None) -> bool:
        locked = super().is_locked(request, credentials)
        # Asked first by the backend, before the password is checked: so a
        # lockout signalled later in this request is new only if this was False.
        if not hasattr(request, "mcsite_locked_before"):
            request.mcsite_locked_before = locked
        return locked

    def user_logged_in(self, sender, request, user, **kwargs):
        super().user_logged_in(sender, request, user, **kwargs)
        clear_failures(request, user)


def clear_failures(request, user) -> None:
    """The right password from this address: forget this user's failures from
    here (not the failures of other usernames from this address). Called on
    every successful login: the web pages' (user_logged_in) and the API's."""
    AccessAttempt.objects.filter(username=user.get_username(), ip_address=login_client(request)).delete()


def retry_after(request=None) -> timedelta:
    """The longest a lock can last from now: the failure just counted is the
    newest, and it stops counting after the cool-off."""
    return cool_off(request)


def lockout_message(request) -> str:
    minutes = math.ceil(retry_after(request).total_seconds() / 60)
    state = getattr(request, "mcsite_login_state", None) or {}
    if state.get("scope") == SCOPE_ADDRESS:
        what = "logins from your address are temporarily locked"
    else:
        what = "this account is temporarily locked for logins from your address"
    return f"Too many failed login attempts: {what}. Try again in {minutes} minutes."


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: 429 with a page that says when to try again, or
    the API's THROTTLED envelope."""
    wait = retry_after(request)
    seconds = str(math.ceil(wait.total_seconds()))
    if door(request) == "api":
        body = {"success": False, "error": lockout_message(request), "code": ErrorCode.THROTTLED.value}
        response = JsonResponse(body, status=429)
    else:
        state = getattr(request, "mcsite_login_state", None) or {}
        response = render(request, "registration/locked_out.html", {
            "minutes": math.ceil(wait.total_seconds() / 60),
            "until": timezone.localtime(timezone.now() + wait),
            "address_wide": state.get("scope") == SCOPE_ADDRESS,
            "login_url": request.path,
        }, status=429)
    response["Retry-After"] = seconds
    return response


@receiver(user_locked_out, dispatch_uid="mcsite.login_throttle.audit_lockout")
def audit_lockout(sender, request, username, ip_address, **kwargs):
    """One audit entry when a login becomes locked, not one per refused try."""
    if request is None or getattr(request, "mcsite_locked_before", False) \
            or getattr(request, "mcsite_lockout_audited", False):
        return
    request.mcsite_lockout_audited = True
    state = getattr(request, "mcsite_login_state", None) or {}
    source = door(request)
    audit(
        actor=None, action="auth.lockout", request=request, source=source, outcome="failure",
        detail={
            "username": (username or "")[:150],
            "door": source,
            "scope": state.get("scope", SCOPE_USER),
            "failures": state.get("failures"),
            "address_failures": state.get("address_failures"),
            "cooloff_minutes": settings.MCSITE_LOGIN_COOLOFF_MINUTES,
            "locked_until": (timezone.now() + retry_after(request)).isoformat(),
        },
    )
    logger.warning("login_locked_out door=%s username=%r ip=%s", source, username, ip_address)
