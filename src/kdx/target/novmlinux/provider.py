"""Open a dump with no vmlinux: symbols, types and unwind tables from the dump itself.

A kernel keeps in its own memory what a first look needs: its symbol table (kallsyms),
its types (BTF, on by default in every major distribution) and its unwind tables (ORC).
``DumpInfoProvider`` reads them and plugs them into drgn through its finder interfaces:

- kallsyms becomes a symbol finder, and the kernel's text range (``_stext``.. ``_end``)
  the main module's range, which lets drgn unwind through the built-in ORC tables;
- the vmlinux BTF and each module's split BTF become a type finder;
- globals get their types from kdx's declaration table (``variables``), per-CPU variables
  from BTF, enumerators from BTF: an object finder;
- modules get their init text ranges, their own kallsyms and, when a ``.ko`` is at hand,
  its DWARF (so frames in that module still get source lines).

A kernel built without BTF still opens ("symbols": names and raw memory only); commands
that need types then say so.

Example::

    >>> target = open_dump(Path("vmcore"), no_vmlinux=True)
    >>> target.debug_source
    'dump'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence

import drgn

from kdx.errors import KdxError
from kdx.target.moduleinfo import load_module_debug_info
from kdx.target.novmlinux.variables import Declarations

if TYPE_CHECKING:
    from kdx.target.novmlinux.btftypes import BtfTypes
    from kdx.target.open import Target

__all__ = ["DumpInfoProvider", "kernel_text_range"]

Progress = Optional[Callable[[str], None]]


@dataclass
class DumpInfoProvider:
    """Debug info read from the dump: kallsyms, BTF, ORC (and module ``.ko`` files)."""

    module_paths: Sequence[Path] = ()
    progress: Progress = None
    debug_dirs: Sequence[Path] = ()
    #: read BTF when the kernel has it (False opens a dump as a kernel without BTF is)
    use_btf: bool = True

    def load(self, target: Target) -> None:
        prog = target.prog
        self._say("reading the kernel's symbol table (kallsyms) from the dump")
        _load_kallsyms(prog, target, self.progress)
        start, end = kernel_text_range(prog)
        main = prog.main_module("kernel", create=True)
        main.address_range = (start, end)
        # the point of this provider: no vmlinux, even if a debug directory holds one
        main.debug_file_status = drgn.ModuleFileStatus.DONT_WANT
        self._say("reading the kernel's types (BTF) from the dump")
        types = _load_btf(prog, target) if self.use_btf else None
        if types is None:
            target.debug_source = "symbols"
            target.warnings.append(
                "the kernel has no BTF: kdx reads symbols (kallsyms) and raw memory only; "
                "commands that need types need the vmlinux")
            return
        target.debug_source = "dump"
        near = target.path.parent if target.path else None
        target.missing_modules, warnings = load_module_debug_info(
            prog, target.release, self.module_paths, self.debug_dirs, near)
        target.warnings.extend(warnings)

    def summary(self, target: Target) -> str:
        """One sentence saying where the debug info came from and what is lost."""
        if target.debug_source == "symbols":
            return ("symbols come from the dump's kallsyms; the kernel has no BTF, so "
                    "commands that need types cannot run")
        return ("symbols, types and unwind tables come from the dump itself (kallsyms, "
                "BTF, ORC); kernel source lines are not available")

    def _say(self, message: str) -> None:
        if self.progress:
            self.progress(message)


def kernel_text_range(prog: drgn.Program) -> tuple[int, int]:
    """Start and end of the kernel image, from kallsyms."""
    try:
        return prog.symbol("_stext").address, prog.symbol("_end").address
    except LookupError as err:
        raise KdxError("the dump's kallsyms has no _stext/_end: it is not a Linux "
                       "kernel's symbol table kdx can use") from err


def _load_kallsyms(prog: drgn.Program, target: Target, progress: Progress) -> None:
    from kdx.model.symtypes import TABLES_CACHE_KEY
    from kdx.target.novmlinux.kallsyms import load_kernel_symbols

    symbols = load_kernel_symbols(prog, target.vmcoreinfo, progress)
    prog.register_symbol_finder("kdx-kallsyms", symbols.index, enable_index=0)
    tables = symbols.tables
    # sym's type letters are decoded from these tables; VMCOREINFO names them on 6.0+,
    # a scan found them otherwise.
    prog.cache[TABLES_CACHE_KEY] = {"num_syms": tables.num_syms, "names": tables.names,
                                    "token_table": tables.token_table,
                                    "token_index": tables.token_index}


def _load_btf(prog: drgn.Program, target: Target) -> BtfTypes | None:
    """Register the BTF type finder and the variable finder; None without BTF."""
    from kdx.target.novmlinux import btftypes
    from kdx.target.novmlinux.btf import BtfError

    try:
        types = btftypes.load(prog)
    except (BtfError, drgn.FaultError) as err:
        target.warnings.append(f"the kernel's BTF cannot be used: {err}")
        return None
    if types is None:
        return None
    declared = Declarations(prog, constant=types.constant_value, vmcoreinfo=target.vmcoreinfo)
    prog.register_object_finder("kdx-variables",
                                _object_finder(types, declared, target.vmcoreinfo),
                                enable_index=0)
    try:
        btftypes.add_module_btf(prog, types)
    except (drgn.FaultError, LookupError, ValueError) as err:
        target.warnings.append(f"module types (BTF) could not be read: {err}")
    if types.skipped:
        target.warnings.append("no types (BTF) for module(s) " + ", ".join(
            f"{name} ({why})" for name, why in sorted(types.skipped.items())))
    return types


def _object_finder(types: BtfTypes, declared: Declarations, vmcoreinfo: Mapping[str, str]
                   ) -> Callable[..., drgn.Object | None]:
    """drgn object finder: declared globals, per-CPU variables and enumerators, and the
    ``vmemmap`` array (drgn derives it from DWARF; VMCOREINFO names it too)."""

    def find(prog: drgn.Program, name: str, flags: drgn.FindObjectFlags,
             filename: str | None) -> drgn.Object | None:
        if name == "vmemmap":
            return _vmemmap(prog, vmcoreinfo)
        if flags & drgn.FindObjectFlags.VARIABLE:
            found = _variable(prog, types, declared, name)
            if found is not None:
                return found
        if flags & drgn.FindObjectFlags.CONSTANT:
            return types.find_constant(name)
        return None

    return find


def _vmemmap(prog: drgn.Program, vmcoreinfo: Mapping[str, str]) -> drgn.Object | None:
    """The page array: VMCOREINFO names it since 6.x; x86-64 keeps its (randomised)
    start in ``vmemmap_base``."""
    page = prog.pointer_type(prog.type("struct page"))
    if "SYMBOL(vmemmap)" in vmcoreinfo:
        return drgn.Object(prog, page, int(vmcoreinfo["SYMBOL(vmemmap)"], 16))
    try:
        return drgn.Object(prog, page, prog["vmemmap_base"].value_())
    except (LookupError, drgn.FaultError):
        return None


def _variable(prog: drgn.Program, types: BtfTypes, declared: Declarations,
              name: str) -> drgn.Object | None:
    if name in declared:
        return declared.object(name)
    kind = types.per_cpu_variable(name)
    if kind is None:
        return None
    try:
        address = prog.symbol(name).address
    except LookupError:
        return None
    return drgn.Object(prog, kind, address=address)
