"""Kernel stack traces as data: the frames crash's ``bt`` shows, and what lies between them.

drgn does the unwinding (ORC and DWARF CFI); this package turns its frames into the
backtrace a crash user reads, and fills the gaps drgn leaves on real dumps:

- **Where an active task starts.** A kdump dump saves, for each CPU, the registers of the
  interrupted context: for an oops, the faulting instruction; for the other CPUs, what
  they ran when the NMI stopped them. crash instead starts at the kdump path itself
  (``machine_kexec``, ``crash_nmi_callback``) found on the stack, so the first frames say
  how the dump was taken. kdx finds the same return address and lets drgn unwind from it,
  and keeps the result only if it joins the trace from the saved registers.
- **Modules without debug info.** drgn cannot unwind through them and stops after a bogus
  frame. kdx names their functions from the module's in-memory kallsyms and steps over
  them with the module's ORC table (also in memory), or, failing that, by finding the
  next return address on the stack as crash does; drgn then carries on.
- **Exception frames.** drgn gives the registers of an interrupted frame; crash shows the
  whole ``pt_regs`` (with ``ORIG_RAX``), found on the stack next to the entry frame.
- **The user-mode boundary.** drgn may unwind into user space and beyond (garbage frames
  down to 0x0); the trace ends at the first user-mode frame, whose registers become the
  user-mode exception frame crash prints last.

Around the trace: crash's other views of a stack -- the text addresses on it (``-t``),
exception frames found by search (``-e``/``-E``), the words named (``-F``), the raw
stack (``-r``), a trace from a chosen stack address (``-S``/``-I``), whether a trace
references something (``-R``) and the stack-end magic check (``-v``).

Records hold plain values (addresses as ints) so they serve text, JSON and storage alike;
text from the dump (command names) is cleaned here.

What lives where:

- :mod:`~kdx.model.stack.records`: the dataclasses every view returns (Frame, Backtrace,
  ExceptionFrame, StackText, StackSearch, RawStack, StackOverflow...).
- :mod:`~kdx.model.stack.reader`: :class:`StackReader`, the per-dump reader of stack
  regions, words, saved registers and module ORC tables.
- :mod:`~kdx.model.stack.unwind`: the unwinder and :func:`backtrace`.
- :mod:`~kdx.model.stack.scan`: the scanners behind ``bt -t/-T``, ``-e/-E``, ``-S/-I``,
  ``-F``, ``-r``, ``-v`` and ``-R``.

The public names are re-exported here, so callers import from ``kdx.model.stack``.
"""

from kdx.model.stack.reader import StackReader
from kdx.model.stack.records import (
    REGISTER_NAMES,
    Backtrace,
    ExceptionFrame,
    FoundExceptionFrame,
    Frame,
    RawStack,
    RawWord,
    StackOverflow,
    StackSearch,
    StackText,
    StackWord,
    WordLabel,
)
from kdx.model.stack.scan import (
    STACK_END_MAGIC,
    backtrace_from,
    check_stack_overflows,
    cpu_exception_frames,
    label_stack_words,
    raw_stack,
    references,
    search_exception_frames,
    stack_text,
    task_exception_frames,
)
from kdx.model.stack.unwind import backtrace, task_context

__all__ = ["Backtrace", "ExceptionFrame", "FoundExceptionFrame", "Frame", "REGISTER_NAMES",
           "RawStack", "RawWord", "STACK_END_MAGIC", "StackOverflow", "StackReader", "StackSearch",
           "StackText", "StackWord", "WordLabel", "backtrace", "backtrace_from",
           "check_stack_overflows", "cpu_exception_frames", "label_stack_words", "raw_stack",
           "references", "search_exception_frames", "stack_text", "task_context",
           "task_exception_frames"]
