"""Being split by subject."""

from kdx.model.memory.zones import (
    AddressReport,
    FreeBlock,
    MemNode,
    MemoryFigures,
    MemoryLayout,
    PageInfo,
    SlabCache,
    SlabObject,
    VmStats,
    VmapArea,
    ZoneFree,
    ZoneStats,
    all_pages,
    find_cache,
    free_areas,
    free_block,
    identify,
    memory_breakdown,
    memory_figures,
    memory_layout,
    page_flag_names,
    page_info,
    page_of,
    slab_cache_record,
    slab_caches,
    vm_stats,
    vmap_areas,
    zone_stats,
)

__all__ = ["AddressReport", "FreeBlock", "MemNode", "MemoryFigures", "MemoryLayout", "PageInfo", "SlabCache", "SlabObject", "VmStats", "VmapArea", "ZoneFree", "ZoneStats", "all_pages", "find_cache", "free_areas", "free_block", "identify", "memory_breakdown", "memory_figures", "memory_layout", "page_flag_names", "page_info", "page_of", "slab_cache_record", "slab_caches", "vm_stats", "vmap_areas", "zone_stats"]
