"""kdx: a toolkit for Linux kernel crashes, from kdump set-up to a verdict on a vmcore.

The library API opens a dump and returns records (frozen dataclasses) for what the
command line prints:

>>> import kdx
>>> dump = kdx.open_dump("vmcore")                        # doctest: +SKIP
>>> dump.backtrace().functions[:3]                        # doctest: +SKIP
['machine_kexec', '__crash_kexec', 'crash_kexec']
>>> dump.run("sys").record.panic                          # doctest: +SKIP
'BUG: kernel NULL pointer dereference, address: 0000000000000000'

The names below are imported on first use, so ``import kdx`` loads neither drgn nor
the commands.
"""

from __future__ import annotations

# ``typing`` alone costs more than the rest of ``import kdx``; type checkers treat this
# name as ``typing.TYPE_CHECKING``.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kdx.api import CommandResult, Dump, Stack, StackFrame, open_dump, to_dict
    from kdx.errors import KdxError

__version__ = "0.1.0"

__all__ = ["CommandResult", "Dump", "KdxError", "Stack", "StackFrame", "__version__",
           "open_dump", "to_dict"]

_LAZY = {"CommandResult": "kdx.api", "Dump": "kdx.api", "Stack": "kdx.api",
         "StackFrame": "kdx.api", "open_dump": "kdx.api", "to_dict": "kdx.api",
         "KdxError": "kdx.errors"}


def __getattr__(name: str) -> Any:
    """Import the public names lazily (PEP 562): a script that only wants
    ``kdx.__version__`` or one submodule pays for nothing else."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kdx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
