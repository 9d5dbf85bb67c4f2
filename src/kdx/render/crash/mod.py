"""The module list as crash 8.0.6's ``mod`` prints it (kernel.c do_module_cmd,
show_module_taint_4_10).

Columns are crash's to the space: MODULE (the struct module) and BASE right-aligned in
16 columns, NAME left-aligned to the longest name, SIZE right-aligned to the widest
size, two spaces between columns; the header centres MODULE and BASE (TEXT_BASE from
Linux 6.4) with the odd space on the right. OBJECT FILE is the debug file drgn uses, or
crash's ``(not loaded)  [CONFIG_KALLSYMS]`` when there is none.
"""

from __future__ import annotations

from kdx.model.modules import ModuleInfo

_ADDRESS_WIDTH = 16


def _centre(text: str, width: int) -> str:
    """crash's CENTER|LJUST: the odd padding space goes to the right."""
    extra = max(width - len(text), 0)
    left = extra // 2
    return " " * left + text + " " * (extra - left)


def module_header(modules: list[ModuleInfo]) -> str:
    name_width, size_width = _widths(modules)
    base = "TEXT_BASE" if any(m.memory_layout == "mem" for m in modules) else "BASE"
    return (f"{_centre('MODULE', _ADDRESS_WIDTH)}  {'NAME':<{name_width}}  "
            f"{_centre(base, _ADDRESS_WIDTH)}  {'SIZE':>{size_width}}  OBJECT FILE")


def _widths(modules: list[ModuleInfo]) -> tuple[int, int]:
    return (max((len(m.name) for m in modules), default=0),
            max((len(str(m.size)) for m in modules), default=0))


def module_row(info: ModuleInfo, modules: list[ModuleInfo]) -> str:
    """One module's line; the widths come from the whole list, as in crash."""
    name_width, size_width = _widths(modules)
    obj = info.debug_file or "(not loaded)  [CONFIG_KALLSYMS]"
    return (f"{info.address:>{_ADDRESS_WIDTH}x}  {info.name:<{name_width}}  "
            f"{info.base:>{_ADDRESS_WIDTH}x}  {info.size:>{size_width}}  {obj}")


def render_modules(modules: list[ModuleInfo], shown: list[ModuleInfo] | None = None) -> str:
    """The header and a line per module of ``shown`` (default: all)."""
    if not modules:
        return "no modules installed"
    rows = [module_row(m, modules) for m in (modules if shown is None else shown)]
    return "\n".join([module_header(modules), *rows])


def render_taints(modules: list[ModuleInfo]) -> str:
    """``mod -t``: NAME and TAINTS of each module that tainted the kernel."""
    tainted = [m for m in modules if m.taints]
    if not tainted:
        return "no tainted modules"
    width = max(len(m.name) for m in tainted)
    return "\n".join([f"{'NAME':<{width}}  TAINTS",
                      *(f"{m.name:<{width}}  {m.taints}" for m in tainted)])
