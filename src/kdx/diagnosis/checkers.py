"""The kernel's generic checkers, and the frame to blame when one of them fires.

A refcount underflow, a corrupt list or a double free is found by a checker that every
caller shares: ``refcount_warn_saturate`` WARNs, the list checks or SLUB's hardened
freelist BUG. The trap lands in the checker, but the bug is in the code that misused the
refcount, the list or the allocator, so the verdict blames the first caller outside the
checker and says which checker fired and what it found.

:data:`CHECKERS` is the one table of checker functions: add a checker there and both
the culprit and the finding follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Pattern, Sequence

from kdx.diagnosis.signature import is_generic, normalise_function
from kdx.diagnosis.verdict import CheckerFinding
from kdx.model.stack import Frame

__all__ = ["CHECKERS", "Checker", "blame_past_checker", "checker_of", "first_outside"]


@dataclass(frozen=True)
class Checker:
    """Functions that check one kind of misuse, and how their report reads."""

    functions: Pattern[str]
    """The checker's functions (normalised names, matched whole)."""
    checks: str
    """What they check ("refcount_t misuse")."""
    report: Pattern[str] | None
    """The checker's own log line; its ``what`` group is the finding."""
    finding: str
    """The finding made of the ``what`` group (``{what}``)."""
    default: str
    """The finding when the checker printed nothing of its own (a bare BUG_ON)."""


def _checker(functions: str, checks: str, report: str | None, default: str,
             finding: str = "{what}") -> Checker:
    return Checker(re.compile(rf"^(?:{functions})$"), checks,
                   re.compile(report) if report else None, finding, default)


#: The checkers, most specific first. Library helpers that only BUG on their caller's
#: misuse belong here; helpers that fault on bad data they were handed do too.
CHECKERS: tuple[Checker, ...] = (
    _checker(r"refcount_warn_saturate|refcount_dec_not_one|refcount_dec_if_one|"
             r"refcount_dec_and_\w*lock\w*|__refcount_\w+|refcount_\w+",
             "refcount_t misuse", r"refcount_t: (?P<what>[^.]+)", "refcount_t misuse",
             "refcount_t {what}"),
    _checker(r"__list_(?:add|del_entry)_valid\w*|__list_valid_slowpath|list_\w+_report|"
             r"__list_\w+_report|__list_del_entry|__list_add|list_del\w*|list_add\w*",
             "list corruption", r"(?P<what>list_(?:add|del) corruption.*)",
             "list corruption"),
    _checker(r"kfree|kvfree|kfree_sensitive|kmem_cache_free|__kmem_cache_free|"
             r"kmem_cache_free_bulk|__slab_free|do_slab_free|slab_free\w*|set_freepointer|"
             r"free_debug_processing|free_to_partial_list|__do_kmem_cache_free",
             "double or invalid slab frees",
             r"(?P<what>(?:BUG \S+ \([^)]*\): )?(?:Object already free|"
             r"Invalid object pointer|Freepointer corrupt|Wrong object count).*)",
             # SLAB_FREELIST_HARDENED's BUG_ON(object == fp) in set_freepointer()
             "a double free: the object freed is already at the head of its slab's "
             "freelist (freed twice)"),
    _checker(r"usercopy_abort|__check_object_size|check_heap_object|check_object_size|"
             r"__check_heap_object",
             "user copies out of an object's bounds (hardened usercopy)",
             r"(?P<what>usercopy: Kernel memory (?:overwrite|exposure) attempt.*)",
             "a user copy out of an object's bounds"),
    _checker(r"fortify_panic|__fortify_panic|__fortify_report",
             "buffer overflows in string and memory helpers (FORTIFY_SOURCE)",
             r"(?P<what>(?:detected buffer overflow in|strnlen: detected).*)",
             "a buffer overflow in a string or memory helper"),
)


def checker_of(function: str | None) -> Checker | None:
    """The checker ``function`` belongs to, if any."""
    if not function:
        return None
    name = normalise_function(function)
    return next((c for c in CHECKERS if c.functions.match(name)), None)


def first_outside(functions: Sequence[str | None]) -> int | None:
    """For physical frames in stack order, the first one where the CPU stopped: the index
    of the first caller outside every checker when frame 0 is a checker's, else None
    (also when no caller is left to blame, e.g. a stack cut short). The full analysis
    and the fast pass both pick the culprit through this, so they agree."""
    if not functions or checker_of(functions[0]) is None:
        return None
    for i, name in enumerate(functions[1:], start=1):
        if name and not is_generic(name) and checker_of(name) is None:
            return i
    return None


def blame_past_checker(frames: Sequence[Frame], index: int, log_lines: Iterable[str]
                       ) -> tuple[int, CheckerFinding] | None:
    """When the frame at ``index`` (where the CPU stopped) is a checker's, the index of
    the first real caller outside every checker, and what fired; None otherwise."""
    physical = [i for i in range(index, len(frames)) if not frames[i].inline]
    if not physical or physical[0] != index:
        return None
    found = first_outside([frames[i].function for i in physical])
    checker = checker_of(frames[index].function)
    if found is None or checker is None:
        return None
    finding = _finding(checker, log_lines)
    fired = normalise_function(frames[index].function or "")
    return physical[found], CheckerFinding(function=fired, checks=checker.checks,
                                           finding=finding,
                                           text=f"{finding} detected by {fired}")


def _finding(checker: Checker, lines: Iterable[str]) -> str:
    """What the checker found, in its own words when the log has them."""
    if checker.report is not None:
        for line in lines:
            found = checker.report.search(line)
            if found:
                return checker.finding.format(what=found.group("what").strip())
    return checker.default
