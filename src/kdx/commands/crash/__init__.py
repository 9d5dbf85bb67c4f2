"""The crash-compatible commands of a kdx session, one module per command family.

Each command module declares its commands with ``kdx.session.command.crash_command`` and
holds nothing another command needs: what several commands share (CPU lists, task words
and selectors, addresses, the session's task and symbol tables, bt's display options)
is in ``arguments``, which declares no command, and a test fails if a command module
imports another. ``INDEX`` names the module of each command word, so a session imports
only the families it uses (capstone, the symbol tables and the unwinder cost start-up
time); a test checks that it lists exactly what the modules declare.
"""

INDEX: dict[str, str] = {
    "*": "pointer",
    "alias": "alias",
    "ascii": "numbers",
    "bpf": "bpf",
    "bt": "bt",
    "btop": "paging",
    "dev": "devices",
    "dis": "dis",
    "dmesg": "log",
    "eval": "numbers",
    "extend": "extend",
    "files": "files",
    "foreach": "foreach",
    "gdb": "gdb",
    "fuser": "fuser",
    "help": "system",
    "ipcs": "ipc",
    "irq": "irq",
    "kmem": "kmem",
    "list": "walk",
    "log": "log",
    "mach": "machine",
    "mod": "mod",
    "mount": "mounts",
    "net": "net",
    "p": "data",
    "print": "data",
    "ps": "ps",
    "py": "python",
    "python": "python",
    "pte": "paging",
    "ptob": "paging",
    "ptov": "paging",
    "rd": "rd",
    "repeat": "repeat",
    "runq": "runq",
    "search": "search",
    "set": "context",
    "sig": "signals",
    "struct": "data",
    "swap": "swap",
    "sym": "sym",
    "sys": "system",
    "task": "context",
    "timer": "timers",
    "tree": "walk",
    "union": "data",
    "vm": "vm",
    "vtop": "paging",
    "waitq": "waitq",
    "whatis": "data",
    "wr": "wr",
    "x": "rd",
}
