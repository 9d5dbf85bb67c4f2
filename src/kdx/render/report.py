"""Renderers of a diagnosis (Verdict): terminal text, Markdown and one-file HTML.

The same record feeds all three, and JSON comes from the generic JSON renderer; what
differs is only presentation, so a fleet dashboard and an engineer's terminal tell the
same story. Every text that came from the dump is cleaned (terminal) or escaped (HTML).
"""

from __future__ import annotations

import html
import textwrap
from pathlib import Path

from kdx.diagnosis.verdict import Culprit, Verdict
from kdx.textsafe import clean


def _where(c: Culprit) -> str:
    if c.function is None:
        return "unknown"
    text = c.function + (f"+{c.offset:#x}" if c.offset is not None else "")
    return text + (f" [{c.module}]" if c.module else "")


def _source_line(c: Culprit) -> str:
    return f"{c.file}:{c.line}" if c.file and c.line else "not known (no debug info)"


def _context_rows(v: Verdict) -> list[tuple[str, str]]:
    ctx = v.context
    rows = [
        ("Task", f"{ctx.comm} (PID {ctx.pid}) on CPU {ctx.cpu}"),
        ("Context", ("interrupt" if ctx.interrupt_context else "process") + ", "
         + {True: "user mode", False: "kernel mode", None: "mode unknown"}[ctx.user_mode]),
        ("Panic", ctx.panic_message or "-"),
    ]
    if ctx.fault_address is not None:
        rows.append(("Fault address", f"{ctx.fault_address:#x}"))
    if ctx.error_code is not None:
        rows.append(("Error code", f"{ctx.error_code:#x}: " + ", ".join(ctx.error_code_decoded)))
    rows += [("Taint", ", ".join(ctx.taint_flags) or "not tainted"),
             ("Kernel", ctx.release)]
    if ctx.uptime_seconds is not None:
        rows.append(("Uptime", f"{ctx.uptime_seconds:.1f} s"))
    return rows


def _culprit_rows(v: Verdict) -> list[tuple[str, str]]:
    c = v.culprit
    rows = [("Function", _where(c)), ("Source", _source_line(c))]
    if c.module_taints:
        rows.append(("Module taints", ", ".join(c.module_taints)))
    if v.checker is not None:
        rows.append(("Checker", v.checker.text + "".join(
            f"; {p.address:#x} is {p.what}" for p in v.checker.points_to)))
    if c.reasoning:
        rows.append(("Why", c.reasoning))
    if v.explanation is not None:
        rows.append(("Bad access", v.explanation.text))
        rows += _track_rows(v)
    if v.locks is not None and v.locks.cycle:
        rows.append(("Deadlock", v.locks.text))
    if v.stall is not None:
        rows.append(("Held up by", v.stall.text))
    return rows


def _track_rows(v: Verdict) -> list[tuple[str, str]]:
    """SLUB's alloc and free tracks of the objects the bad access involved, with the
    call chains the stack depot kept (innermost first)."""
    rows = []
    for point in v.explanation.points_to if v.explanation else []:
        for track in point.tracks:
            key = "Allocated by" if track.kind == "alloc" else "Freed by"
            chain = " < ".join(track.stack[:6]) if track.stack else (track.stack_note or "")
            rows.append((key, track.text.split(" by ", 1)[1] + (f"; stack: {chain}"
                                                                if chain else "")))
    return rows


def _row(key: str, value: str, width: int = 80) -> str:
    """``Key:          value`` wrapped to ``width`` with the value's column kept."""
    return textwrap.fill(value, width=width, initial_indent=f"{key + ':':<15}",
                         subsequent_indent=" " * 15, break_long_words=False,
                         break_on_hyphens=False)


def render_text(v: Verdict) -> str:
    """Plain text, readable at 80 columns (rich adds colour on a terminal)."""
    out = [f"{v.signature.title}", "=" * min(78, len(v.signature.title)), "",
           _row("Category", f"{v.category}: {v.summary}"), ""]
    out += [_row(k, val) for k, val in _culprit_rows(v)]
    out.append("")
    out += [_row(k, val) for k, val in _context_rows(v)]
    if v.culprit.source:
        s = v.culprit.source
        out += ["", f"Source ({Path(s.file).name}):"]
        for n, text in enumerate(s.lines, s.first_line):
            out.append(f"{'*' if n == s.marked_line else ' '} {n:5}  {text}")
    if v.culprit.disassembly:
        out += ["", "Code:"]
        out += [f"{'=>' if i.faulting else '  '} {i.text}" for i in v.culprit.disassembly]
    out += ["", f"Signature: {v.signature.hash}  ({' < '.join(v.signature.frames)})"]
    out += _detail_lines(v)
    for ev in v.evidence:
        out += ["", f"[{ev.id}] {ev.title}"] + [f"  {line}" for line in ev.lines[:40]]
    if v.next_steps:
        out += ["", "Next steps:"] + [f"  {s}" for s in v.next_steps]
    if v.warnings:
        out += ["", "Warnings:"] + [f"  {w}" for w in v.warnings]
    return "\n".join(clean(line) for line in out) + "\n"


def _detail_lines(v: Verdict) -> list[str]:
    d = v.details
    out = []
    if "blocked_task" in d:
        out.append(f"Blocked task: {d['blocked_task']['comm']} (PID {d['blocked_task']['pid']})")
    if "lock" in d:
        out.append(f"Waiting for lock: {d['lock'].get('symbol') or hex(d['lock']['address'])}")
    if "lock_owner" in d:
        out.append(f"Lock owner: {d['lock_owner']['comm']} (PID {d['lock_owner']['pid']})")
    for user in d.get("top_memory_users", []):
        out.append(f"Memory user: {user['comm']} (PID {user['pid']}) {user['rss_kib']} KiB")
    return [""] + out if out else []


def render_markdown(v: Verdict) -> str:
    def esc(text: str) -> str:
        return clean(text).replace("|", "\\|")

    out = [f"# {esc(v.signature.title)}", "", f"**Category:** `{v.category}` — {esc(v.summary)}",
           "", "| | |", "|---|---|"]
    out += [f"| {k} | {esc(val)} |" for k, val in _culprit_rows(v) + _context_rows(v)]
    out += ["", f"**Signature:** `{v.signature.hash}` ({esc(' < '.join(v.signature.frames))})"]
    if v.culprit.source:
        s = v.culprit.source
        out += ["", f"## Source: `{Path(s.file).name}`", "", "```c"]
        out += [f"{'*' if n == s.marked_line else ' '} {n:5}  {clean(t)}"
                for n, t in enumerate(s.lines, s.first_line)]
        out.append("```")
    if v.culprit.disassembly:
        out += ["", "## Code", "", "```"]
        out += [f"{'=>' if i.faulting else '  '} {i.text}" for i in v.culprit.disassembly]
        out.append("```")
    for ev in v.evidence:
        out += ["", f"## {esc(ev.title)} (`{ev.id}`)", "", "```"]
        out += [clean(line) for line in ev.lines]
        out.append("```")
    if v.next_steps:
        out += ["", "## Next steps", ""] + [f"- `{s}`" for s in v.next_steps]
    if v.warnings:
        out += ["", "## Warnings", ""] + [f"- {esc(w)}" for w in v.warnings]
    return clean("\n".join(out) + "\n")  # code, steps: dump text is never raw


_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1d1d1f}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse}td{padding:.2rem .8rem;vertical-align:top}
td:first-child{font-weight:600;white-space:nowrap}
pre{background:#f4f4f6;padding:.8rem;overflow-x:auto;font-size:.85rem}
.cat{display:inline-block;background:#b00020;color:#fff;padding:.1rem .5rem;border-radius:4px}
.mark{background:#ffe08a}svg text{font-size:12px}
"""


def _memory_chart(memory: dict[str, int]) -> str:
    """An inline SVG bar chart of memory use (no scripts, no external files)."""
    total = memory.get("total") or 0
    items = [(k, v) for k, v in memory.items() if k != "total" and v > 0]
    if not total or not items:
        return "<p>No memory figures in this dump.</p>"
    width, row = 520, 22
    bars = []
    for i, (name, kib) in enumerate(items):
        w = max(1, int(width * kib / total))
        y = i * row
        bars.append(f'<rect x="160" y="{y}" width="{w}" height="{row - 6}" fill="#4a6fa5"/>'
                    f'<text x="0" y="{y + 12}">{html.escape(name.replace("_", " "))}</text>'
                    f'<text x="{166 + w}" y="{y + 12}">{kib // 1024} MiB '
                    f"({100 * kib / total:.1f}%)</text>")
    return (f'<svg role="img" aria-label="memory use" width="{width + 300}" '
            f'height="{row * len(items)}">{"".join(bars)}</svg>'
            f"<p>Total RAM: {total // 1024} MiB</p>")


def render_html(v: Verdict) -> str:
    e = html.escape

    def table(rows: list[tuple[str, str]]) -> str:
        return "<table>" + "".join(f"<tr><td>{e(k)}</td><td>{e(clean(val))}</td></tr>"
                                   for k, val in rows) + "</table>"

    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8>"
             f"<title>{e(v.signature.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{e(v.signature.title)}</h1>",
             f'<p><span class=cat>{e(v.category)}</span> {e(v.summary)}</p>',
             "<h2>Culprit</h2>", table(_culprit_rows(v)),
             "<h2>Context</h2>", table(_context_rows(v)),
             f"<p>Signature <code>{e(v.signature.hash)}</code>: "
             f"{e(' < '.join(v.signature.frames))}</p>"]
    if v.culprit.source:
        s = v.culprit.source
        lines = [(f'<span class=mark>{n:5}  {e(t)}</span>' if n == s.marked_line
                  else f"{n:5}  {e(t)}") for n, t in enumerate(s.lines, s.first_line)]
        parts += [f"<h2>Source: {e(Path(s.file).name)}</h2><pre>", "\n".join(lines), "</pre>"]
    if v.culprit.disassembly:
        code = "\n".join((f'<span class=mark>=> {e(i.text)}</span>' if i.faulting
                          else f"   {e(i.text)}") for i in v.culprit.disassembly)
        parts += ["<h2>Code</h2><pre>", code, "</pre>"]
    parts += ["<h2>Memory</h2>", _memory_chart(v.details.get("memory", {}))]
    for ev in v.evidence:
        parts += [f"<h2>{e(ev.title)}</h2><pre>",
                  "\n".join(e(clean(line)) for line in ev.lines), "</pre>"]
    if v.next_steps:
        parts += ["<h2>Next steps</h2><ul>"] + [f"<li><code>{e(s)}</code></li>"
                                                for s in v.next_steps] + ["</ul>"]
    if v.warnings:
        parts += ["<h2>Warnings</h2><ul>"] + [f"<li>{e(clean(w))}</li>" for w in v.warnings]
        parts.append("</ul>")
    parts.append("</body></html>")
    return clean("\n".join(parts) + "\n")  # escaped above; no control characters either
