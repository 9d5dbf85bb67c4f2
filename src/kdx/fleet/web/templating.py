"""The Jinja2 environment of the pages: autoescaping always on (dump text is untrusted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from kdx.fleet.web.charts import daily_bars, kernel_bars, sparkline

__all__ = ["HERE", "debug_text", "dump_title", "templates"]

HERE = Path(__file__).resolve().parent


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _when(iso: str | None) -> str:
    return "-" if not iso else iso.replace("T", " ")[:16]


def dump_title(dump: Any, *, reason: bool = True) -> str:
    """A dump's one-line name: the full verdict's title, else the fast pass's, else why
    it failed (or just that it failed, without ``reason``)."""
    verdict = dump.verdict or {}
    title = (verdict.get("signature") or {}).get("title") if isinstance(verdict, dict) else None
    if not title and dump.fast:
        title = dump.fast.get("title")
    if title:
        return title
    if dump.failure:
        return f"failed: {dump.failure}" if reason else "analysis failed"
    return "not analysed yet" if dump.state in ("received", "fast") else "no title"


_DEBUG = {"dwarf": "the vmlinux's DWARF debug info",
          "dump": "the vmlinux, found by build ID",
          "symbols": "no vmlinux: analysed with the kernel's own symbols (kallsyms, BTF, ORC)",
          "log": "no vmlinux: the verdict comes from the kernel log"}


def debug_text(source: str | None) -> str:
    """What a dump's ``debug_source`` means for its verdict."""
    if source is None:
        return "-"
    return _DEBUG.get(source, source)


_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters.update(size=_size, when=_when)
_env.globals.update(daily_bars=daily_bars, kernel_bars=kernel_bars, sparkline=sparkline,
                    dump_title=dump_title, debug_text=debug_text)

templates = Jinja2Templates(env=_env)
