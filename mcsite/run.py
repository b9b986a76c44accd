"""`make run`: prepare the site and run the web server, a Celery worker and
beat in the foreground. Ctrl-C stops all three; if one dies, the others are
stopped too, so the user never has half a site running without noticing."""

import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _django_setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcsite.settings")
    import django

    django.setup()


def prepare() -> None:
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    call_command("register_system_tasks", verbosity=0)
    for folder in (settings.MCSITE_SERVERS_ROOT, settings.MCSITE_BACKUP_ROOT):
        Path(folder).mkdir(parents=True, exist_ok=True)
    _ensure_admin(settings)


def _ensure_admin(settings) -> None:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    username = os.environ.get("MCSITE_ADMIN_USER", "admin")
    url = f"http://127.0.0.1:{settings.MCSITE_PORT}/"
    if User.objects.filter(is_superuser=True).exists():
        print(f"\n  mcsite: log in at {url} (admin: {url}admin/) with your existing admin account.")
        print("  Forgot the password? .venv/bin/python manage.py changepassword " + username + "\n")
        return
    password = os.environ.get("MCSITE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    User.objects.create_superuser(username, "", password)
    shown = password if not os.environ.get("MCSITE_ADMIN_PASSWORD") else "(the one in MCSITE_ADMIN_PASSWORD)"
    print("\n  mcsite: created the admin account — this password is shown only once:")
    print(f"    username: {username}\n    password: {shown}")
    print(f"  Log in at {url} (admin: {url}admin/).\n")


def bind_address() -> str:
    return os.environ.get("MCSITE_BIND", "127.0.0.1")


def port_problem(host: str, port: int) -> str | None:
    """Why the web server could not listen on host:port, or None if it can.
    A bind test as gunicorn's own (SO_REUSEADDR, so a port in TIME_WAIT after
    the previous run is free), done before anything is started: a second
    `make run` must not start a second worker and beat before gunicorn fails."""
    address = host.strip("[]") or "0.0.0.0"
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        return (f"mcsite: cannot listen on {host}:{port}: the address {host!r} is unknown ({exc}). "
                "Set MCSITE_BIND to an address of this machine (default 127.0.0.1).")
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                other = port + 1 if port < 65535 else 8000
                return (f"mcsite: port {port} on {host} is already in use (is mcsite already running?). "
                        f"Stop what listens there, or choose another port: MCSITE_PORT={other} make run")
            if exc.errno == errno.EADDRNOTAVAIL:
                return (f"mcsite: cannot listen on {host}:{port}: {host} is not an address of this machine. "
                        "Set MCSITE_BIND to one of its addresses (default 127.0.0.1).")
            if exc.errno == errno.EACCES:
                return (f"mcsite: not allowed to listen on port {port} (ports below 1024 need root). "
                        "Choose another port with MCSITE_PORT (default 5000).")
            return (f"mcsite: cannot listen on {host}:{port}: {exc.strerror or exc}. "
                    "Check MCSITE_BIND and MCSITE_PORT.")
    return None


def commands(settings) -> list[list[str]]:
    port = str(settings.MCSITE_PORT)
    host = bind_address()
    concurrency = os.environ.get("MCSITE_WORKER_CONCURRENCY", "2")
    queues = ",".join(sorted({settings.MCSITE_NODE, "default"}))
    return [
        [str(BIN / "gunicorn"), "mcsite.wsgi:application", "--bind", f"{host}:{port}",
         "--workers", os.environ.get("MCSITE_WEB_WORKERS", "2"), "--threads", "4",
         "--access-logfile", "-", "--timeout", "120"],
        [str(BIN / "celery"), "-A", "mcsite", "worker", "-l", "info", "-Q", queues,
         "--concurrency", concurrency, "-n", f"{settings.MCSITE_NODE}@%h"],
        [str(BIN / "celery"), "-A", "mcsite", "beat", "-l", "info",
         "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
         "--pidfile", str(ROOT / "var" / "celerybeat.pid")],
    ]


def supervise(cmds: list[list[str]]) -> int:
    children = [subprocess.Popen(cmd, cwd=ROOT) for cmd in cmds]
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"mcsite: {Path(child.args[0]).name} exited with {child.returncode}; stopping the rest")
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
    return exit_code


def main() -> int:
    _django_setup()
    from django.conf import settings

    problem = port_problem(bind_address(), settings.MCSITE_PORT)
    if problem:  # before anything starts (or the running site's beat pid file is removed)
        print(problem, file=sys.stderr)
        return 1
    prepare()
    beat_pid = ROOT / "var" / "celerybeat.pid"
    beat_pid.unlink(missing_ok=True)  # left behind by a killed run; we are the only beat here
    return supervise(commands(settings))


if __name__ == "__main__":
    sys.exit(main())
