"""The crash-compatible commands of a kdx session, one module per command family.

Each module exposes ``COMMANDS`` (a list of ``kdx.session.command.CrashCommand``).
``INDEX`` names the module of each command word, so a session imports only the families
it uses (capstone, the symbol tables and the unwinder cost start-up time); a test checks
that it lists exactly what the modules define.
"""

INDEX: dict[str, str] = {
    "ascii": "data",
    "bt": "bt",
    "dis": "dis",
    "dmesg": "log",
    "eval": "data",
    "files": "files",
    "foreach": "foreach",
    "help": "system",
    "kmem": "kmem",
    "log": "log",
    "mod": "mod",
    "p": "data",
    "print": "data",
    "ps": "ps",
    "rd": "rd",
    "set": "context",
    "struct": "data",
    "sym": "sym",
    "sys": "system",
    "task": "context",
    "union": "data",
    "vm": "vm",
    "whatis": "data",
    "x": "rd",
}
