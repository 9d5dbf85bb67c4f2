"""One damaged dump, one process: open it once, run the crash commands and ``analyze``,
and print a JSON summary of what each did, for tests/test_damaged_dumps.py.

Run as ``python damage_child.py VMCORE VMLINUX MODULES MEMORY_BYTES CMD...``. The address
space is capped first (RLIMIT_AS), so a length read from a damaged dump that makes kdx
allocate without bound ends as a MemoryError here rather than on the machine.
"""

from __future__ import annotations

import json
import resource
import sys
import traceback


def main(argv: list[str]) -> int:
    vmcore, vmlinux, modules, memory, *commands = argv
    resource.setrlimit(resource.RLIMIT_AS, (int(memory), int(memory)))
    from kdx.api import open_dump
    from kdx.errors import KdxError

    summary: dict = {"open_error": None, "warnings": [], "commands": [], "analyze": None}
    try:
        dump = open_dump(vmcore, vmlinux, [modules])
    except KdxError as err:
        summary["open_error"] = str(err)
        print(json.dumps(summary))
        return 1
    summary["warnings"] = list(dump.warnings)
    for line in commands:
        result = dump.run(line)
        summary["commands"].append({"command": line, "ok": result.ok, "text": result.text,
                                    "error": result.error})
    try:
        from kdx.render.report import render_text

        summary["analyze"] = {"text": render_text(dump.analyze()), "error": None}
    except KdxError as err:
        summary["analyze"] = {"text": "", "error": str(err)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except BaseException:  # the test reads this as the failure it is
        print("TRACEBACK " + traceback.format_exc().replace("\n", " | "))
        code = 70
    sys.exit(code)
