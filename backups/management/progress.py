"""A tqdm progress bar fed by a service's observer callback, in the
command's own thread (no polling, no second database connection)."""

import sys
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(label: str, *, enabled: bool = True):
    """Yields an observer(done, total, phase) for backup_run / restore_run."""
    if not enabled:
        yield None
        return
    bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr,
               dynamic_ncols=True)

    def observe(done, total, phase):
        if phase:
            bar.set_postfix_str(phase, refresh=False)
            bar.set_description(f"{label} ({phase})", refresh=False)
        if total:
            bar.total = total
        if done is not None:
            bar.n = min(done, total or done)
        bar.refresh()

    try:
        yield observe
    finally:
        bar.close()
