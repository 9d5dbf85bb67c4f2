"""Memory figures, slab caches and what an address is — crash's ``kmem`` as records.

The package is split by ``kmem`` option, each module holding its records and the reads
behind them:

- :mod:`~kdx.model.memory.figures`: ``kmem -i`` (:func:`memory_figures`, by crash 8.0.6's
  rules, and :func:`memory_breakdown`).
- :mod:`~kdx.model.memory.slab`: ``kmem -s`` (:func:`slab_caches`, :func:`find_cache`) and
  the slab object an address lies in.
- :mod:`~kdx.model.memory.pages`: ``kmem ADDR`` (:func:`identify`), ``-p`` and ``-v``: pages,
  page flags and vmalloc areas.
- :mod:`~kdx.model.memory.vmstat`: ``kmem -V`` (:func:`vm_stats`).
- :mod:`~kdx.model.memory.zones`: ``kmem -z``, ``-f`` and ``-n``: zones, free areas and
  blocks, the memory layout.

The public names are re-exported here, so callers import from ``kdx.model.memory``.
"""

from kdx.model.memory._errors import Warn
from kdx.model.memory.figures import MemoryFigures, memory_breakdown, memory_figures
from kdx.model.memory.pages import (
    AddressReport,
    PageInfo,
    TaskContext,
    VmapArea,
    all_pages,
    identify,
    page_flag_names,
    page_info,
    page_of,
    vmap_areas,
)
from kdx.model.memory.slab import SlabCache, SlabObject, find_cache, slab_cache_record, slab_caches
from kdx.model.memory.vmstat import VmStats, vm_stats
from kdx.model.memory.zones import (
    FreeBlock,
    FreeList,
    MemBlock,
    MemNode,
    MemoryLayout,
    MemSection,
    ZoneFree,
    ZoneSpan,
    ZoneStats,
    free_areas,
    free_block,
    memory_layout,
    zone_stats,
)

__all__ = ["AddressReport", "FreeBlock", "FreeList", "MemBlock", "MemNode", "MemSection",
           "MemoryFigures", "MemoryLayout", "PageInfo", "SlabCache", "SlabObject", "TaskContext",
           "VmStats", "VmapArea", "Warn", "ZoneFree", "ZoneSpan", "ZoneStats", "all_pages",
           "find_cache", "free_areas", "free_block", "identify", "memory_breakdown",
           "memory_figures", "memory_layout", "page_flag_names", "page_info", "page_of",
           "slab_cache_record", "slab_caches", "vm_stats", "vmap_areas", "zone_stats"]
