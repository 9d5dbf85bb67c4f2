"""The kernel modules of a dump, as crash's ``mod`` lists them, as data.

``ModuleInfo`` holds plain values only (addresses as ints), so the same record feeds the
crash-style renderer, ``--json`` and a database. The numbers follow crash 8.0.6's rules
(kernel.c do_module_cmd, symbols.c store_module_symbols_*) because users compare the two
side by side:

- MODULE is the address of the ``struct module``;
- BASE/SIZE is the core layout before Linux 6.4; from 6.4 on (``mod->mem[]``) crash
  shows TEXT_BASE, the text region's start (0 for a module without core text), and a SIZE
  summing every core region, init excluded;
- the list is sorted by that base address, not in the kernel's (load) order.

Which debug file each module uses comes from drgn's Module API, the one place that knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import drgn
from drgn.helpers.linux.module import module_taints

from kdx.model.bounded import ListLoopError
from kdx.model.bounded import modules as for_each_module
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.textsafe import one_line


@dataclass(frozen=True)
class ModuleRegion:
    """One memory region of a module: ``kind`` is TEXT, DATA, RODATA, RO_AFTER_INIT,
    INIT_TEXT, INIT_DATA, INIT_RODATA (6.4+), or CORE and INIT (older kernels)."""

    kind: str
    base: Hex
    size: int

    @property
    def init(self) -> bool:
        return self.kind.startswith("INIT")

    def contains(self, address: int) -> bool:
        return self.base <= address < self.base + self.size


@dataclass(frozen=True)
class ModuleInfo:
    """One loaded module, with crash's MODULE, BASE and SIZE columns."""

    name: str
    address: Hex  # the struct module: crash's MODULE column
    base: Hex  # crash's BASE (core layout) or TEXT_BASE (6.4+ text region)
    size: int  # crash's SIZE: the core memory, init excluded
    text_base: Hex
    text_size: int
    init_base: Hex  # 0 once the init sections are freed
    init_size: int
    state: str  # live, coming (init running), going, unformed
    taints: str  # the module's taint letters, e.g. "OE"
    debug_file: str | None  # the file drgn uses for its types and lines, if any
    memory_layout: str  # "mem" (6.4+ per-region memory) or "layout" (older)
    regions: list[ModuleRegion] = field(default_factory=list)

    def region_of(self, address: int) -> ModuleRegion | None:
        return next((r for r in self.regions if r.size and r.contains(address)), None)


def module_list(prog: drgn.Program, warnings: list[str] | None = None) -> list[ModuleInfo]:
    """Every loaded module in crash's order (by base address). A module whose
    ``struct module`` cannot be read costs a warning, not the list."""
    out: list[ModuleInfo] = []
    try:
        for mod in for_each_module(prog):
            try:
                out.append(module_info(prog, mod))
            except READ_ERRORS as err:
                if warnings is not None:
                    warnings.append(f"cannot read the module at {mod.value_():#x}: {err}")
    except (ListLoopError, drgn.FaultError, drgn.BadDataError) as err:
        if warnings is not None:
            warnings.append(f"the module list is damaged, {len(out)} modules read: {err}")
    # Python's sort is stable, as crash's (glibc's merge sort) is in practice.
    return sorted(out, key=lambda m: m.base)


def module_info(prog: drgn.Program, mod: drgn.Object) -> ModuleInfo:
    """The record of one ``struct module *``."""
    regions, layout = _regions(prog, mod)
    if layout == "mem":
        text = next(r for r in regions if r.kind == "TEXT")
        base, size = text.base, sum(r.size for r in regions if not r.init)
        text_base, text_size = text.base, text.size
    else:
        core = next(r for r in regions if r.kind == "CORE")
        base, size = core.base, core.size
        text_base, text_size = core.base, _layout_text_size(mod.core_layout)
    init = [r for r in regions if r.init and r.size]
    return ModuleInfo(
        name=one_line(mod.name.string_()),
        address=mod.value_(),
        base=base,
        size=size,
        text_base=text_base,
        text_size=text_size,
        init_base=min((r.base for r in init), default=0),
        init_size=sum(r.size for r in init),
        state=_state(mod),
        taints=_taints(mod),
        debug_file=_debug_file(prog, mod),
        memory_layout=layout,
        regions=regions,
    )


def _regions(prog: drgn.Program, mod: drgn.Object) -> tuple[list[ModuleRegion], str]:
    """The module's memory regions and which layout the kernel uses."""
    try:
        count = prog.constant("MOD_MEM_NUM_TYPES").value_()
    except LookupError:
        core, init = mod.core_layout, mod.init_layout
        return [ModuleRegion("CORE", core.base.value_(), core.size.value_()),
                ModuleRegion("INIT", init.base.value_(), init.size.value_())], "layout"
    kinds = _mem_type_names(prog, count)
    return [ModuleRegion(kinds[i], mod.mem[i].base.value_(), mod.mem[i].size.value_())
            for i in range(count)], "mem"


def _mem_type_names(prog: drgn.Program, count: int) -> list[str]:
    """``enum mod_mem_type`` names without their ``MOD_`` prefix, in value order, as
    crash's region labels use them (MODULE TEXT START, MODULE INIT_DATA END...)."""
    enum = prog.type("enum mod_mem_type")
    names = {value: name for name, value in enum.enumerators or ()}
    return [names.get(i, f"MEM{i}").removeprefix("MOD_") for i in range(count)]


def _layout_text_size(layout: drgn.Object) -> int:
    try:
        return layout.text_size.value_()
    except AttributeError:
        return layout.size.value_()


def _state(mod: drgn.Object) -> str:
    """``MODULE_STATE_COMING`` -> ``coming``: the word a user sees in lsmod terms."""
    try:
        name = mod.state.format_(type_name=False)
    except (drgn.FaultError, LookupError):
        return "unknown"
    return name.removeprefix("MODULE_STATE_").lower()


def _taints(mod: drgn.Object) -> str:
    try:
        return module_taints(mod)
    except READ_ERRORS:
        return ""


def _debug_file(prog: drgn.Program, mod: drgn.Object) -> str | None:
    """The debug file drgn loaded for the module, by drgn's own account."""
    try:
        module = prog.linux_kernel_loadable_module(mod)
    except LookupError:
        return None
    if module.debug_file_status != drgn.ModuleFileStatus.HAVE:
        return None
    return module.debug_file_path


def find_module(modules: list[ModuleInfo], ref: str) -> ModuleInfo | None:
    """A module by name, or by the address of its ``struct module`` or base, as crash's
    ``mod -s``/``mod -d`` accept either."""
    for info in modules:
        if info.name == ref:
            return info
    try:
        address = int(ref, 16)
    except ValueError:
        return None
    return next((m for m in modules if address in (m.address, m.base)), None)


def module_at(modules: list[ModuleInfo], address: int) -> tuple[ModuleInfo, ModuleRegion] | None:
    """The module and region holding ``address``, if any."""
    for info in modules:
        region = info.region_of(address)
        if region is not None:
            return info, region
    return None
