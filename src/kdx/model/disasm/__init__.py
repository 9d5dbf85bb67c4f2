"""Being split by subject."""

from kdx.model.disasm.decode import (
    CONTEXT_BEFORE,
    Disassembly,
    Instruction,
    SourceListing,
    decode,
    disassemble,
    display_path,
    find_source,
    function_range,
    is_text,
    read_source,
    source_dirs,
    source_listing,
    spell,
)

__all__ = ["CONTEXT_BEFORE", "Disassembly", "Instruction", "SourceListing", "decode", "disassemble", "display_path", "find_source", "function_range", "is_text", "read_source", "source_dirs", "source_listing", "spell"]
