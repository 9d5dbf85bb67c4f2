"""Crash signatures for bucketing: a normalised title and a hash of meaningful frames.

Two dumps of one bug on different boots differ in addresses (KASLR), offsets, PIDs and
compiler-made names; the signature keeps only what identifies the bug: the category, and
the first frames that are not the generic machinery every crash passes through.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

from kdx.diagnosis.verdict import Signature

#: Suffixes compilers add to clones and split functions (.isra.0, .constprop.1, .cold...).
_SUFFIX = re.compile(r"(\.(isra|constprop|part|cold|lto_priv|llvm)(\.\d+)*)+$")
#: Frames that say how the kernel died, not where the bug is (syzbot and FAF skip these).
_GENERIC = re.compile(
    r"^(panic|vpanic|nmi_panic|oops_end|die|die_body|do_trap|do_error_trap|do_int3|"
    r"__die|__die_body|crash_kexec|__crash_kexec|machine_kexec|crash_setup_regs|"
    r"exc_\w+|asm_exc_\w+|handle_bug|report_bug|__warn|warn_slowpath\w*|"
    r"page_fault_oops|no_context|__bad_area_nosemaphore|bad_area_nosemaphore|"
    r"kernelmode_fixup_or_oops|do_user_addr_fault|handle_page_fault|"
    r"dump_stack\w*|show_stack|show_regs|printk|_printk|vprintk\w*|"
    r"_raw_spin_\w+|_raw_read_\w+|_raw_write_\w+|spin_\w+|mutex_lock\w*|__mutex_lock\w*|"
    r"schedule|__schedule|schedule_timeout|schedule_preempt_disabled|"
    r"watchdog_timer_fn|__hrtimer_run_queues|hrtimer_interrupt|"
    r"__sysvec_\w+|sysvec_\w+|asm_sysvec_\w+|irq_exit_rcu|__irq_exit_rcu|"
    r"delay_tsc|__const_udelay|native_safe_halt|default_idle\w*)$")


def normalise_function(name: str) -> str:
    """``crashlab_average.constprop.0`` → ``crashlab_average``."""
    return _SUFFIX.sub("", name)


def is_generic(name: str) -> bool:
    return bool(_GENERIC.match(normalise_function(name)))


def meaningful_frames(functions: Iterable[str], limit: int = 4) -> list[str]:
    """The first ``limit`` non-generic, normalised function names, in stack order."""
    out: list[str] = []
    for name in functions:
        if not name or name.startswith("0x"):
            continue
        plain = normalise_function(name)
        if is_generic(plain) or (out and out[-1] == plain):
            continue
        out.append(plain)
        if len(out) == limit:
            break
    return out


def normalise_title(title: str) -> str:
    """syzbot's title normalisation: no addresses, numbers, offsets or CPU numbers."""
    title = re.sub(r"\+0x[0-9a-f]+/0x[0-9a-f]+", "", title)
    title = re.sub(r"\b0x[0-9a-f]+\b", "ADDR", title)
    title = re.sub(r"\b[0-9a-f]{12,16}\b", "ADDR", title)
    title = re.sub(r"CPU#\d+", "CPU", title)
    title = re.sub(r":\d+\b", ":LINE", title)
    title = re.sub(r"(?<![A-Za-z_0-9])\d+", "NUM", title)
    return title[:120]


def make_signature(category: str, title: str, functions: Iterable[str],
                   module: str | None) -> Signature:
    """The bucket of a crash: same bug, same signature, whatever the boot."""
    frames = meaningful_frames(functions)
    key = "|".join([category, module or "", *frames])
    return Signature(normalise_title(title), hashlib.sha256(key.encode()).hexdigest()[:16],
                     frames)
