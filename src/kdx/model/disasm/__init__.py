"""Disassembly of kernel and module code as crash's ``dis`` shows it, with source lines.

crash disassembles through gdb, so its users read GNU AT&T syntax: ``mov %rdi,%rbx``,
``nopl 0x0(%rax,%rax,1)``, ``call 0xffffffff... <panic>``. kdx decodes with capstone and
spells each instruction the way GNU's disassembler does (capstone's own AT&T output adds
size suffixes everywhere, prints decimal immediates and spaces after commas), so that a
``dis`` from kdx can be read, diffed and grepped like one from crash. The few spellings
that still differ are listed in docs/crash-differences.md.

Source lines come from drgn (the innermost inlined location, as gdb's line table gives
it), and the text of a line from the source file when it can be found: at the path the
debug info names, else by its name in the directories of the module ``.ko`` files and
beside the dump. This works for module code too, including a module's ``__init``
function that crash 8.0.6 cannot disassemble at all (its init section is only known to
crash as ``_MODULE_INIT_START_<module>``).

What lives where:

- :mod:`~kdx.model.disasm.spelling`: GNU AT&T spelling of capstone's instructions.
- :mod:`~kdx.model.disasm.decode`: the :class:`Instruction` and :class:`Disassembly`
  records, decoding, :class:`Disassembler`, :func:`disassemble` and function ranges.
- :mod:`~kdx.model.disasm.source`: source lines and files, ``dis -s`` listings, the
  ``dis -l`` prefixes and display paths.

The DWARF compilation-directory reader is :mod:`kdx.target.dwarfinfo`. The public names
are re-exported here, so callers import from ``kdx.model.disasm``.
"""

from kdx.model.disasm.decode import (
    DEFAULT_SPAN,
    MAX_INSN,
    Disassembler,
    Disassembly,
    FunctionRange,
    Instruction,
    decode,
    disassemble,
    function_range,
    is_text,
)
from kdx.model.disasm.source import (
    CONTEXT_BEFORE,
    SourceListing,
    SourceText,
    display_path,
    find_source,
    kernel_compile_dir,
    line_prefixes,
    load_sources,
    module_of,
    read_source,
    source_dirs,
    source_listing,
)
from kdx.model.disasm.spelling import Spelled, spell

__all__ = ["CONTEXT_BEFORE", "DEFAULT_SPAN", "Disassembler", "Disassembly", "FunctionRange",
           "Instruction", "MAX_INSN", "SourceListing", "SourceText", "Spelled", "decode",
           "disassemble", "display_path", "find_source", "function_range", "is_text",
           "kernel_compile_dir", "line_prefixes", "load_sources", "module_of", "read_source",
           "source_dirs", "source_listing", "spell"]
