"""``kmem -V``: the kernel's global zone, node, NUMA and event counters, named by their
enum names, as crash lists them.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass

import drgn
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.percpu import per_cpu_ptr

from kdx.model.memory._errors import _safe

__all__ = ["VmStats", "vm_stats"]


@dataclass(frozen=True)
class VmStats:
    """``kmem -V``: the kernel's global counters by their enum names (zone, node and,
    on kernels that have it, NUMA items), and the vm events summed over CPUs."""

    zone: tuple[tuple[str, int], ...]
    node: tuple[tuple[str, int], ...]
    numa: tuple[tuple[str, int], ...]
    events: tuple[tuple[str, int], ...]


def _enum_names(prog: drgn.Program, type_name: str, count_name: str) -> list[str]:
    """Enumerator names of ``type_name`` below its ``NR_...`` count, by value."""
    try:
        enum = prog.type(f"enum {type_name}")
    except LookupError:
        return []
    limit = dict(enum.enumerators or ()).get(count_name)
    names: dict[int, str] = {}
    for name, value in enum.enumerators or ():
        if limit is not None and value >= limit:
            continue
        names[value] = name  # crash keeps the last name of an aliased value
    return [names[v] for v in sorted(names)]


def _counters(prog: drgn.Program, symbol: str, names: list[str]) -> tuple[tuple[str, int], ...]:
    try:
        array = prog[symbol]
    except KeyError:
        return ()
    return tuple((name, array[i].counter.value_()) for i, name in enumerate(names))


def _vm_events(prog: drgn.Program) -> tuple[tuple[str, int], ...]:
    names = _enum_names(prog, "vm_event_item", "NR_VM_EVENT_ITEMS")
    try:
        states = prog["vm_event_states"]
    except KeyError:
        return ()
    totals = [0] * len(names)
    for cpu in for_each_online_cpu(prog):
        events = per_cpu_ptr(states.address_of_(), cpu).event
        raw = prog.read(events.address_, 8 * len(names))
        for i in range(len(names)):
            totals[i] += struct.unpack_from("<Q", raw, 8 * i)[0]
    return tuple(zip(names, (t & ((1 << 64) - 1) for t in totals)))


def vm_stats(prog: drgn.Program) -> VmStats:
    zone = _counters(prog, "vm_zone_stat",
                     _enum_names(prog, "zone_stat_item", "NR_VM_ZONE_STAT_ITEMS"))
    node = _counters(prog, "vm_node_stat",
                     _enum_names(prog, "node_stat_item", "NR_VM_NODE_STAT_ITEMS"))
    numa = ()
    with contextlib.suppress(KeyError, LookupError):
        if len(prog["vm_numa_stat"]):
            numa = _counters(prog, "vm_numa_stat",
                             _enum_names(prog, "numa_stat_item", "NR_VM_NUMA_STAT_ITEMS"))
    return VmStats(zone, node, numa, _safe(lambda: _vm_events(prog), ()))  # type: ignore[arg-type]
