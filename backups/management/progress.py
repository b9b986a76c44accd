"""Runs a service call in a thread and shows the progress its record reports
as a tqdm bar, so commands show progress without a second code path."""

import threading
import time

from tqdm import tqdm


def run_with_progress(target, *, poll, label: str, stream=None):
    """`target()` does the work; `poll()` returns (done, total, phase)."""
    outcome = {}

    def work():
        from django.db import connection

        try:
            outcome["result"] = target()
        except BaseException as exc:  # noqa: BLE001 — re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    with tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=stream,
              dynamic_ncols=True) as bar:
        while thread.is_alive():
            thread.join(0.3)
            done, total, phase = poll()
            if total and bar.total != total:
                bar.total = total
            bar.n = min(done or 0, total or done or 0)
            bar.set_postfix_str(phase or "", refresh=False)
            bar.refresh()
        done, total, phase = poll()
        if total:
            bar.total = total
            bar.n = min(done or 0, total)
        bar.set_postfix_str(phase or "")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")
