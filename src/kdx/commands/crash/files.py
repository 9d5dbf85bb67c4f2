"""``files``: the open files of a task, and ``files -d DENTRY``.

Like crash, ``files`` takes PIDs or task addresses (the current task when none is given),
prints the task header, the root and working directory, then one line per open
descriptor. Task words are read as every per-task command reads them
(``kdx.commands.crash.arguments``).
"""

from __future__ import annotations

import argparse

import drgn

from kdx.commands.crash.arguments import (
    for_each_task_argument,
    hex_word,
    physical_width,
    task_chunk,
)
from kdx.model.answers import InodePageCache, TaskFilesPageCache, TaskFilesReference
from kdx.model.files import (
    InodePages,
    TaskFiles,
    dentry_info,
    inode_mapping,
    inode_pages,
    max_fds,
    task_files,
)
from kdx.model.memory import page_flag_names, page_info
from kdx.render.crash.files import (
    FILES_HEADER,
    NRPAGES_HEADER,
    file_line,
    files_block,
    nrpages_line,
    render_dentry,
    render_inode_pages,
)
from kdx.render.crash.kmem import page_header, page_line
from kdx.render.crash.layout import rstrip_lines, task_header
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("files", "the open files of tasks, as crash prints them")
    parser.add_argument("-d", dest="dentry", metavar="DENTRY",
                        help="show one dentry (hexadecimal address): inode, super block, "
                        "type and path")
    parser.add_argument("-p", dest="inode", metavar="INODE",
                        help="the pages of one inode (hexadecimal address) in the page "
                        "cache, as kmem -p shows them")
    parser.add_argument("-c", dest="nrpages", action="store_true",
                        help="show each file's inode, address_space and number of cached "
                        "pages instead of its file and dentry")
    parser.add_argument("-R", dest="reference", metavar="REF",
                        help="only the files that reference REF: a descriptor number, a "
                        "file, dentry or inode address, a type, or part of a path")
    parser.add_argument("tasks", nargs="*", metavar="PID|TASK",
                        help="PIDs or task addresses (default: the current task)")
    return parser


@crash_command("files", "open files of a task (-c page cache, -R REF); -d DENTRY, -p INODE",
               parser=_parser)
def _files(session: Session, args: argparse.Namespace) -> None:
    if args.dentry is not None:
        info = dentry_info(session.prog, hex_word(args.dentry))
        session.emit("files-dentry", info, lambda: render_dentry(info))
        return
    if args.inode is not None:
        _inode_pages(session, hex_word(args.inode))
        return
    records: list[TaskFiles | TaskFilesPageCache | TaskFilesReference] = []
    texts: list[str] = []

    def visit(form: str, task: drgn.Object) -> None:
        record = task_files(task, session.warn)
        lines, pages = _file_lines(session, record, args.nrpages)
        if args.reference is None:
            records.append(TaskFilesPageCache(record, pages) if args.nrpages else record)
            text = files_block(record, lines, nrpages=args.nrpages)
            texts.append(task_chunk(text, form, first=not texts))
            return
        text, matched = _referenced(record, lines, args.reference, max_fds(task),
                                    args.nrpages)
        if matched is not None:
            records.append(TaskFilesReference(record, args.reference, matched))
        texts.append(text + ("\n" if form == "pid" else ""))

    for_each_task_argument(session, args.tasks, visit)
    session.emit("files", records, lambda: "".join(texts))


def _file_lines(session: Session, record: TaskFiles,
                nrpages: bool) -> tuple[list[str], list[InodePages]]:
    """Each descriptor's line; with ``-c`` the inode's address_space and page count."""
    if not nrpages:
        return [file_line(f) for f in record.files], []
    lines, pages = [], []
    for entry in record.files:
        mapping = count = 0
        if entry.inode:
            try:
                mapping, count = inode_mapping(session.prog, entry.inode)
            except (drgn.FaultError, LookupError) as err:
                session.warn(f"fd {entry.fd}: cannot read the inode's page cache: {err}")
            pages.append(InodePages(entry.inode, mapping, count))
        lines.append(nrpages_line(entry, mapping, count))
    return lines, pages


def _path_component(path: str, ref: str) -> bool:
    """crash's FILENAME_COMPONENT: ``/`` matches only ``/``, anything else any part of
    the path."""
    return (path == "/" and ref == "/") or (ref != "/" and ref in path)


def _number_reference(ref: str, largest_fd: int) -> tuple[str, int] | None:
    """crash's reading of a numeric -R argument: ("fd", n) for a decimal number no
    larger than the descriptor table, else ("hex", value); None for a word."""
    digits = ref[2:] if ref.lower().startswith("0x") else ref
    if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    if digits.isdigit() and not ref.lower().startswith("0x") and int(digits) <= largest_fd:
        return "fd", int(digits)
    return "hex", int(digits, 16)


def _line_matches(line: str, ref: str, number: tuple[str, int] | None) -> bool:
    """crash's open_file_reference on one printed descriptor line."""
    words = line.split()
    if len(words) < 5:
        return False
    if number is not None:
        kind, value = number
        if int(words[0]) == value:
            return True
        if kind == "hex" and any(w != "?" and int(w, 16) == value for w in words[1:4]):
            return True
    if ref == words[4]:
        return True
    return len(words) == 6 and _path_component(words[5], ref)


def _referenced(record: TaskFiles, lines: list[str], ref: str, largest_fd: int,
                nrpages: bool) -> tuple[str, list[int] | None]:
    """``files -R``: the task header and ROOT/CWD line, the files header and the lines
    that reference ``ref``, then a blank line; nothing when nothing does."""
    number = _number_reference(ref, largest_fd)
    t = record.task
    head = [task_header(t.pid, t.task, t.cpu, t.command),
            f"ROOT: {record.root}    CWD: {record.cwd}"]
    found = record.root is not None and (_path_component(record.root, ref) or
                                         _path_component(record.cwd or "", ref))
    matched = [i for i, line in enumerate(lines) if _line_matches(line, ref, number)]
    if not found and not matched:
        return "", None
    out = list(head) if record.root is not None else head[:1]
    if matched:
        out.append(NRPAGES_HEADER if nrpages else FILES_HEADER)
        out.extend(lines[i] for i in matched)
    return rstrip_lines("\n".join(out)) + "\n\n", [record.files[i].fd for i in matched]


def _inode_pages(session: Session, inode: int) -> None:
    """``files -p INODE``: the inode's cached pages."""
    prog = session.prog
    try:
        info = inode_pages(prog, inode)
    except (drgn.FaultError, LookupError) as err:
        raise CommandError(f"cannot read the inode at {inode:x}: {err}") from err
    names = page_flag_names(prog)
    width = physical_width(prog)
    page_lines = []
    pages = []
    for address in info.pages:
        try:
            page = page_info(prog, drgn.Object(prog, "struct page *", address), names)
        except (drgn.FaultError, LookupError) as err:
            session.warn(f"page {address:x}: {err}")
            continue
        pages.append(page)
        page_lines.append(page_line(page, width))
    if page_lines:
        page_lines.insert(0, page_header(width))
    if info.nrpages and len(info.pages) != info.nrpages:
        session.warn(f"xarray page count: {len(info.pages)}  nrpages: {info.nrpages}")
    session.emit("files-pages", InodePageCache(info, pages),
                 lambda: render_inode_pages(inode, info.nrpages, page_lines))
