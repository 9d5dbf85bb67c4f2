"""crash's ``files`` layout: the task header, ROOT/CWD, then one line per descriptor.

The columns follow crash 8.0.6 filesys.c (open_files_dump, file_dump, display_dentry_info):
addresses centred in 16 columns, the fd right-aligned in three, the type padded to four.
"""

from __future__ import annotations

from kdx.model.files import DentryInfo, OpenFile, TaskFiles
from kdx.render.crash.layout import VADDR_WIDTH, field, hexaddr, rstrip_lines, task_header

FILES_HEADER = " FD" + " " + field("FILE", VADDR_WIDTH, center=True, left=True) + " " + \
    field("DENTRY", VADDR_WIDTH, center=True, left=True) + " " + \
    field("INODE", VADDR_WIDTH, center=True, left=True) + " TYPE PATH"

DENTRY_HEADER = field("DENTRY", VADDR_WIDTH, center=True, left=True) + " " + \
    field("INODE", VADDR_WIDTH, center=True, left=True) + " " + \
    field("SUPERBLK", VADDR_WIDTH, center=True, left=True) + " TYPE PATH"


def _address(value: int) -> str:
    return field(hexaddr(value), VADDR_WIDTH, center=True, right=True)


def file_line(entry: OpenFile) -> str:
    """One descriptor line. A file without a dentry or inode shows ``?`` where crash
    does, with the missing address zero-filled."""
    dentry = _address(entry.dentry) if entry.dentry else f"{0:016x}"
    if not entry.dentry:
        inode = field("?", VADDR_WIDTH, center=True)
    elif not entry.inode:
        inode = f"{0:016x}"
    else:
        inode = _address(entry.inode)
    return (f"{entry.fd:3d} {_address(entry.file)} {dentry} {inode} "
            f"{entry.type:<4} {entry.path}")


def render_files(record: TaskFiles, *, header: bool = True) -> str:
    """The ``files`` output for one task; ``header`` adds crash's task header line."""
    lines = []
    if header:
        t = record.task
        lines.append(task_header(t.pid, t.task, t.cpu, t.command))
    if record.root is not None:
        lines.append(f"ROOT: {record.root}    CWD: {record.cwd}")
    if record.files:
        lines.append(FILES_HEADER)
        lines.extend(file_line(f) for f in record.files)
    else:
        lines.append("No open files")
    return rstrip_lines("\n".join(lines))


def render_dentry(info: DentryInfo) -> str:
    """``files -d``: the dentry, its inode and super block, type and path."""
    line = (f"{field(hexaddr(info.dentry), VADDR_WIDTH, right=True)} "
            f"{field(hexaddr(info.inode), VADDR_WIDTH, right=True)} "
            f"{field(hexaddr(info.superblock), VADDR_WIDTH, center=True)} "
            f"{info.type:<4} {info.path}")
    return rstrip_lines(DENTRY_HEADER + "\n" + line)


NRPAGES_HEADER = " FD" + " " + field("INODE", VADDR_WIDTH, center=True, left=True) + " " + \
    field("I_MAPPING", VADDR_WIDTH, center=True, left=True) + " NRPAGES TYPE PATH"
INODE_PAGES_HEADER = field("INODE", VADDR_WIDTH, center=True, left=True) + "  NRPAGES"


def nrpages_line(entry: OpenFile, mapping: int, nrpages: int) -> str:
    """One ``files -c`` line: inode, its address_space and the pages cached; a file
    without a dentry or inode keeps the plain line, as crash prints it."""
    if not entry.dentry or not entry.inode:
        return file_line(entry)
    return (f"{entry.fd:3d} {_address(entry.inode)} {_address(mapping)} {nrpages:7d} "
            f"{entry.type:<4} {entry.path}")


def files_block(record: TaskFiles, lines: list[str], *, nrpages: bool = False,
                header: bool = True) -> str:
    """The ``files`` output of one task from already formatted descriptor lines."""
    out = []
    if header:
        t = record.task
        out.append(task_header(t.pid, t.task, t.cpu, t.command))
    if record.root is not None:
        out.append(f"ROOT: {record.root}    CWD: {record.cwd}")
    if lines:
        out.append(NRPAGES_HEADER if nrpages else FILES_HEADER)
        out.extend(lines)
    else:
        out.append("No open files")
    return rstrip_lines("\n".join(out))


def render_inode_pages(inode: int, nrpages: int, page_lines: list[str]) -> str:
    """``files -p``: the inode and its page count, then its cached pages as ``kmem -p``
    shows them (``page_lines`` starts with the page header)."""
    head = [INODE_PAGES_HEADER,
            f"{field(hexaddr(inode), VADDR_WIDTH, center=True, right=True)}  {nrpages:7d}",
            ""]
    return rstrip_lines("\n".join(head + page_lines))
