"""Crash signatures for bucketing: a normalised title and a hash of the bug's own frames.

A fleet groups dumps by signature, so one bug must give one signature however it was
seen: on any boot (KASLR moves every address), with or without a vmlinux (inline frames
exist only with DWARF), taken by kdump or by QEMU (kexec frames in one, pvpanic and the
panic notifiers in the other), whichever path an interrupt took to run the code, and on
each kernel version that has the same culprit function (callers get renamed and inlined
from one release to the next). Version 2 therefore hashes:

- the category and the culprit's module;
- the culprit: the first frame, from where the report starts, that is neither how the
  kernel died (panic, kexec, pvpanic, notifiers, oops and warning reporting), nor generic
  machinery (locks, the scheduler), nor interrupt, softirq or timer plumbing; frames of
  the interrupted context (below an ``asm_*`` entry) and thread or syscall roots end the
  search;
- when the culprit is a library helper (``memcpy``, ``strlen``, list checks, ``kfree``...),
  also its first caller, since a helper names no bug by itself;
- the normalised title only when no frame is left (an OOM panic in a user page fault:
  then the process name in the title tells one workload from another).

The full analysis hashes the frames its unwinder read, the fast pass the call trace the
kernel printed; both start at the same place and skip the same frames, so the two agree.
:data:`SIGNATURE_VERSION` is stored with every signature, so a fleet can recompute its
buckets when these rules change.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

from kdx.diagnosis.verdict import Signature

__all__ = ["SIGNATURE_VERSION", "is_boundary", "is_generic", "is_plumbing", "make_signature",
           "meaningful_frames", "normalise_function", "normalise_title", "signature_frames"]

#: The version of the rules below; a signature made by other rules never equals one made
#: by these (the version is part of what is hashed).
SIGNATURE_VERSION = 2

#: Suffixes compilers add to clones and split functions (.isra.0, .constprop.1, .cold...).
_SUFFIX = re.compile(r"(\.(isra|constprop|part|cold|lto_priv|llvm)(\.\d+)*)+$")
#: Frames that say how the kernel died, or that every crash passes through (syzbot and
#: FAF skip these): panic and its notifiers, kexec, QEMU's pvpanic, oops and warning
#: reporting, printing, locks and the scheduler, and the retpoline thunks an indirect call
#: passes through (which one is a compiler detail).
_GENERIC = re.compile(
    r"^(panic|vpanic|nmi_panic|\w*panic_on_\w+|panic_print_sys_info|nmi_panic_self_stop|"
    r"oops_end|die|die_body|do_trap|do_error_trap|do_int3|__die|__die_body|"
    r"crash_kexec|__crash_kexec|machine_kexec|crash_setup_regs|machine_crash_shutdown|"
    r"native_machine_crash_shutdown|crash_save_cpu|kdump_nmi_shootdown_cpus|"
    r"pvpanic_\w+|\w*notifier_call_chain\w*|notify_die|kmsg_dump\w*|"
    r"exc_\w+|handle_bug|report_bug|__report_bug|__warn|warn_slowpath\w*|__warn_printk|"
    r"__stack_chk_fail|"
    r"page_fault_oops|no_context|__bad_area_nosemaphore|bad_area_nosemaphore|"
    r"kernelmode_fixup_or_oops|do_user_addr_fault|handle_page_fault|"
    r"dump_stack\w*|show_stack|show_regs|show_trace_log_lvl|printk|_printk|vprintk\w*|"
    r"_raw_spin_\w+|_raw_read_\w+|_raw_write_\w+|spin_\w+|mutex_lock\w*|__mutex_lock\w*|"
    r"schedule|__schedule|schedule_timeout|schedule_preempt_disabled|"
    r"watchdog_timer_fn|"
    r"__x86_indirect_thunk\w*|__x86_indirect_call_thunk\w*|__x86_return_thunk|"
    r"delay_tsc|__const_udelay|native_safe_halt|default_idle\w*)$")
#: Interrupt, softirq and timer plumbing: which of these ran a callback depends on the
#: path the interrupt took (``run_timer_softirq`` on one boot, ``timer_expire_remote`` on
#: another), never on the bug.
_PLUMBING = re.compile(
    r"^(call_timer_fn|__run_timers|run_timer_softirq|__run_timer_base|run_timer_base|"
    r"timer_expire_remote|tmigr_\w+|expire_timers|__hrtimer_run_queues|hrtimer_interrupt|"
    r"hrtimer_run_queues|__run_hrtimer|handle_softirqs|__do_softirq|do_softirq\w*|"
    r"invoke_softirq|irq_exit\w*|__irq_exit_rcu|__local_bh_enable_ip|local_bh_enable|"
    r"tasklet_action\w*|tasklet_hi_action|run_ksoftirqd|smpboot_thread_fn|"
    r"__sysvec_\w+|sysvec_\w+|common_interrupt|__common_interrupt|handle_irq_event\w*|"
    r"__handle_irq_event_percpu|handle_\w+_irq|generic_handle_\w+|irq_work_\w+|"
    r"__flush_smp_call_function_queue|flush_smp_call_function_queue|"
    r"generic_smp_call_function_single_interrupt|rcu_core|rcu_core_si|rcu_do_batch|"
    r"nmi_handle|default_do_nmi|__nmi_handler)$")
#: Where the bug's own frames end: an entry from another context (everything below it is
#: whatever that interrupt or exception interrupted), or the root of a thread or syscall.
_BOUNDARY = re.compile(
    r"^(asm_\w+|entry_\w+|do_syscall_64|do_int80_syscall_32|ret_from_fork\w*|kthread|"
    r"secondary_startup\w*|common_startup_64|start_kernel|x86_64_start_\w+|"
    r"cpu_startup_entry|do_idle|start_secondary|rest_init|kernel_init)$")
#: Library helpers: a bug in one is its caller's bug, so its caller is hashed too.
_LIBRARY = re.compile(
    r"^(_*mem(cpy|set|move|cmp|chr)\w*|_*str(n?len|n?cmp|n?casecmp|n?cpy|scpy\w*|l?cat|"
    r"ncat|r?chr|str|sep|n?dup)|_*copy_(to|from)_user\w*|rep_movs\w*|"
    r"__list_(add|del)\w*|list_(add|del)\w*|__list_del_entry_valid\w*|"
    r"refcount_\w+|kfree|kvfree|kmem_cache_free|__kmem_cache_free|kfree_\w+|"
    r"__kmalloc\w*|kmalloc\w*|kmem_cache_alloc\w*|kvmalloc\w*|"
    r"rb_(erase|insert_color|next|prev|first|last)\w*|__rb_\w+|xa_\w+|__xa_\w+|"
    r"bitmap_\w+|__bitmap_\w+|_?find_\w*_bit\w*|"
    r"sort|sort_r|bsearch|simple_strto\w+|kstrto\w+|vsn?printf|sn?printf|scnprintf)$")
#: Frames of an out-of-memory panic that are the page allocator or the fault that called
#: it: the bucket is named by whoever allocated.
_ALLOCATOR = re.compile(
    r"^(out_of_memory|check_panic_on_oom|pagefault_out_of_memory|__alloc_pages\w*|"
    r"alloc_pages\w*|__alloc_frozen_pages\w*|__folio_alloc\w*|folio_alloc\w*|"
    r"vma_alloc_folio\w*|alloc_anon_folio|do_anonymous_page|do_pte_missing|"
    r"__handle_mm_fault|handle_mm_fault|do_fault|do_read_fault|do_cow_fault|"
    r"__do_fault|filemap_fault|page_cache_ra_\w+|__pte_alloc|__pmd_alloc|"
    r"get_page_from_freelist|__alloc_pages_slowpath|___slab_alloc|__slab_alloc\w*|"
    r"allocate_slab|new_slab|slab_alloc\w*|__kmalloc\w*|kmalloc\w*|kmem_cache_alloc\w*|"
    r"__kmem_cache_alloc\w*|alloc_slab_page|__vmalloc\w*|vmalloc\w*|__get_free_pages|"
    r"get_zeroed_page\w*)$")
#: The frames panic() itself runs through: what precedes the last one is kexec's or
#: pvpanic's and says nothing of why panic() was called.
_PANIC = ("panic", "vpanic", "nmi_panic")
#: Library helpers followed at most this far up the stack.
_MAX_FRAMES = 4


def normalise_function(name: str) -> str:
    """``crashlab_average.constprop.0`` → ``crashlab_average``; a ``+0x..`` offset goes."""
    return _SUFFIX.sub("", name.split("+", 1)[0])


def is_generic(name: str) -> bool:
    """True for frames every crash passes through (how the kernel died, locks, ...)."""
    return bool(_GENERIC.match(normalise_function(name)))


def is_plumbing(name: str) -> bool:
    """True for interrupt, softirq and timer plumbing."""
    return bool(_PLUMBING.match(normalise_function(name)))


def is_boundary(name: str) -> bool:
    """True for an entry from another context or a thread or syscall root."""
    return bool(_BOUNDARY.match(normalise_function(name)))


def meaningful_frames(functions: Iterable[str], limit: int = _MAX_FRAMES,
                      category: str = "") -> list[str]:
    """The normalised frames of the bug, in stack order, at most ``limit``: after the
    last panic frame, without generic frames or plumbing (or, for ``oom``, allocator
    frames), up to the first boundary; recursion folded. When only plumbing is left, the
    first plumbing frame stands for the culprit (a bug in the timer code itself)."""
    names = [normalise_function(n) for n in functions if n and not n.startswith("0x")]
    last_panic = max((i for i, n in enumerate(names) if n in _PANIC), default=-1)
    out: list[str] = []
    plumbing: list[str] = []
    for name in names[last_panic + 1:]:
        if _BOUNDARY.match(name):
            break
        if _GENERIC.match(name) or (category == "oom" and _ALLOCATOR.match(name)):
            continue
        if _PLUMBING.match(name):
            plumbing.append(name)
            continue
        if out and out[-1] == name:
            continue
        out.append(name)
        if len(out) == limit:
            break
    return out or plumbing[:1]


def signature_frames(functions: Iterable[str], category: str = "") -> list[str]:
    """The frames a signature hashes: the culprit, and while the last one taken is a
    library helper, its caller too."""
    frames = meaningful_frames(functions, _MAX_FRAMES, category)
    out = frames[:1]
    for name in frames[1:]:
        if not _LIBRARY.match(out[-1]):
            break
        out.append(name)
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
    """The bucket of a crash: same bug, same signature, whatever the boot, the capture
    method, the debug info or the kernel version. ``functions`` are the frames in stack
    order from where the report starts (the culprit, or the whole panic stack)."""
    frames = signature_frames(functions, category)
    normalised = normalise_title(title)
    key = "|".join([str(SIGNATURE_VERSION), category, module or "", *frames])
    if not frames:
        key += "|" + normalised
    return Signature(normalised, hashlib.sha256(key.encode()).hexdigest()[:16], frames,
                     SIGNATURE_VERSION)
