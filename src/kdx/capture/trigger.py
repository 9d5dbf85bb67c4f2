"""``kdx kdump test``: crash this machine on purpose, once kdump is known to be ready.

A kdump set-up is only proven by a real crash, but a crash with a broken set-up loses the
machine and teaches nothing; so the status checks run first and any failure stops here.
"""

from __future__ import annotations

import os

from kdx.capture.status import FAIL, run_checks
from kdx.capture.system import System
from kdx.errors import KdxError

SYSRQ_TRIGGER = "/proc/sysrq-trigger"


def crash_now(system: System, confirmed: bool) -> str:
    """Write ``c`` to the SysRq trigger after the checks pass; returns what it did.

    With a saved copy (``--root``) it writes into that copy's trigger file instead,
    which is how this is tested without crashing anything.
    """
    if not confirmed:
        raise KdxError("this crashes the machine on purpose: add --yes-really-crash to do it")
    failed = [c.name for c in run_checks(system).checks if c.state == FAIL]
    if failed:
        raise KdxError(f"kdump is not ready ({', '.join(failed)} failed): run "
                       "'kdx kdump status' and fix it first")
    trigger = system.path(SYSRQ_TRIGGER)
    if system.live:
        os.sync()  # what is not on disk now is lost with the machine
    try:
        with open(trigger, "w") as f:
            f.write("c")
    except OSError as err:
        raise KdxError(f"cannot write {trigger}: {err.strerror}") from err
    return f"wrote 'c' to {trigger}"
