"""``log`` (alias ``dmesg``): the kernel log buffer, with crash's options."""

from __future__ import annotations

import argparse

from kdx.model.log import KernelLog, LogDocument, audit_records, boot_epoch, kernel_log
from kdx.model.system import system_info
from kdx.render.crash.log import LogOptions, log_lines, render_audit
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

#: Lines written to the output at once: a large log starts showing (and can be piped to
#: ``head``) before all of it is formatted.
_CHUNK = 2000


def _parser():
    parser = make_parser("log", "the kernel log buffer, oldest message first")
    parser.add_argument("-T", dest="human", action="store_true",
                        help="human-readable time (boot time plus the record's timestamp; "
                             "suspend periods make it drift, as in crash)")
    parser.add_argument("-t", dest="no_time", action="store_true",
                        help="no timestamps (wins over -T, as in crash)")
    parser.add_argument("-m", dest="level", action="store_true",
                        help="show each message's log level, e.g. <6>")
    parser.add_argument("-d", dest="dictionary", action="store_true",
                        help="show the device dictionary lines (SUBSYSTEM=, DEVICE=)")
    parser.add_argument("-c", dest="caller", action="store_true",
                        help="show the caller id: T<thread> or C<cpu>")
    parser.add_argument("-a", dest="audit", action="store_true",
                        help="the audit messages still queued in the kernel")
    return parser


@crash_command("log", "the kernel log buffer (-T dates, -t no time, -m levels, -d, -a)",
               parser=_parser, aliases=("dmesg",),
               needs_types=False)
def _log(session: Session, args: argparse.Namespace) -> None:
    if args.audit:
        records = audit_records(session.prog)
        session.emit("log-audit", records, lambda: render_audit(records))
        return
    log: KernelLog = session.cached("log", lambda: kernel_log(session.prog))
    for warning in log.warnings:
        session.warn(warning)
    options = LogOptions(
        timestamps="none" if args.no_time else "human" if args.human else "seconds",
        level=args.level, caller=args.caller, dictionary=args.dictionary,
        boot_epoch=_boot_epoch(session) if args.human else None)
    if session.json:
        session.emit("log", LogDocument(log.records, options.boot_epoch), "")
        return
    _stream(session, log, options)


def _boot_epoch(session: Session) -> int:
    """crash's boot date, from the same crash time and uptime ``sys`` shows."""
    info = session.cached("sys", lambda: system_info(session.target))
    epoch = boot_epoch(info.date_epoch, info.uptime_seconds)
    if epoch is None:
        raise CommandError("-T needs the uptime, and the kernel's tick rate is unknown")
    return epoch


def _stream(session: Session, log: KernelLog, options: LogOptions) -> None:
    chunk: list[str] = []
    for line in log_lines(log, options):
        chunk.append(line)
        if len(chunk) >= _CHUNK:
            session.write("\n".join(chunk) + "\n")
            chunk = []
    if chunk:
        session.write("\n".join(chunk) + "\n")
