"""Node tasks (issue #15): the heartbeat each node's worker runs on its own
queue, the calls the web tier sends a node, and beat's fan-out that sends
the heartbeats and finds silent nodes. Thin: the work is servers/nodes.py."""

from celery import shared_task
from celery.signals import worker_ready

from servers import nodes


@shared_task(ignore_result=True)
def node_heartbeat() -> None:
    nodes.node_heartbeat()


@shared_task(ignore_result=True, acks_late=True)
def run_node_call(call_id: int) -> None:
    nodes.node_call_run(call_id=call_id)


@shared_task(ignore_result=True)
def send_node_heartbeats() -> list:
    """Beat's system:node-heartbeats: heartbeats out, then the silent nodes marked down."""
    nodes.heartbeats_send()
    return nodes.nodes_check()


@worker_ready.connect
def _report_on_start(sender=None, **kwargs) -> None:
    """A worker that starts reports its node at once (a new node appears
    before beat's next heartbeat; a returning one is up again)."""
    import logging

    from django.conf import settings

    log = logging.getLogger("mcsite.nodes")
    controller = getattr(sender, "controller", None)
    declared = getattr(getattr(getattr(sender, "app", None), "amqp", None), "queues", None)
    queues = set((getattr(declared, "consume_from", None) or declared or {}).keys()) if declared is not None else set()
    if queues and settings.MCSITE_NODE not in queues:
        log.warning("node_queue_mismatch node=%s queues=%s: MCSITE_NODE should be the queue this worker serves",
                    settings.MCSITE_NODE, ",".join(sorted(queues)))
    try:
        nodes.node_heartbeat(started=True, worker_count=getattr(controller, "concurrency", None))
    except Exception:  # noqa: BLE001 — never stop a worker from starting; beat's heartbeat follows
        log.exception("node_heartbeat_failed on start")
    try:
        from backups.services.maintenance import reap_own_runs_on_start  # backups builds on servers

        reap_own_runs_on_start()
    except Exception:  # noqa: BLE001 — beat's reaper tries again
        log.exception("reap_on_start_failed")
