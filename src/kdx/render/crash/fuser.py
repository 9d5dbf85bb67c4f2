"""crash's ``fuser`` layout (filesys.c show_fuser): one line per task using the file,
with how it uses it."""

from __future__ import annotations

from kdx.model.fuser import FileUser
from kdx.render.crash.layout import VADDR_WIDTH, field, rstrip_lines

__all__ = ["FUSER_HEADER", "render_fuser"]

FUSER_HEADER = " PID   " + field("TASK", VADDR_WIDTH, center=True) + "  COMM             USAGE"


def _command(comm: str) -> str:
    """crash's COMM column: the quoted name cut to 16 columns, its last one blanked."""
    text = f'"{comm}"\n'[:16]
    return text[:-1].ljust(16)


def render_fuser(users: list[FileUser], wanted: str) -> str:
    if not users:
        return f"No users of {wanted} found"
    lines = [FUSER_HEADER]
    lines.extend(f"{u.task.pid:>5}  {u.task.task:>16x}  {_command(u.task.command)} "
                 f"{' '.join(u.uses)}" for u in users)
    return rstrip_lines("\n".join(lines))
