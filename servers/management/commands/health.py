"""`manage.py health [--node NAME] [--beat]`: exit 0 when healthy, 1 if not
(one line per check). For systemd, compose and monitoring: see
docs/deployment.md, "Health checks"."""

from django.core.management.base import BaseCommand

from servers import health


class Command(BaseCommand):
    help = "Check the database, a node's heartbeat (--node) and beat (--beat); exit 1 when one fails."

    def add_arguments(self, parser):
        parser.add_argument("--node", action="append", default=[], help="a node that must be reporting")
        parser.add_argument("--beat", action="store_true", help="beat must be sending the node heartbeats")

    def handle(self, *args, **options):
        checks = [health.database_ok()]
        checks += [health.node_ok(name) for name in options["node"]]
        if options["beat"]:
            checks.append(health.beat_ok())
        for ok, line in checks:
            self.stdout.write(("ok    " if ok else "FAIL  ") + line)
        if not all(ok for ok, _ in checks):
            raise SystemExit(1)
