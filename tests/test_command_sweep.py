"""Every session command, in its common forms, on whole dumps of both kernels: none may
fail with an unexpected exception, every one must succeed with real output (text, and a
``--json`` answer with data), and every ``--json`` answer must be valid JSON that matches
its kind's shipped JSON Schema.

The comparisons with crash check what each command prints; this sweep checks that no
command breaks on a dump it was not written against. A new command word must be added
to SWEEP (a test checks that every word of the command index is swept).
"""

from __future__ import annotations

import io
import json

import pytest
from json_schemas import schema_problems

from kdx.commands.crash import INDEX
from kdx.session.session import Session

#: Command lines run on every swept dump, text and JSON.
SWEEP = [
    "sys", "sys -c", "sys config", "help", "help bt",
    "bt", "bt -a", "bt -f", "bt -F", "bt -l", "bt -e", "bt -E", "bt -t", "bt -T", "bt -r",
    "bt -v", "bt -p", "bt -s -x",
    "ps", "ps -k", "ps -u", "ps -G", "ps -s", "ps -p", "ps -c", "ps -t", "ps -l", "ps -a",
    "ps -g", "ps -r", "ps -S", "ps -A", "ps -m", "ps -H", "ps -y 0",
    "set", "set -p", "task", "task -R pid,comm", "log", "log -T", "log -m", "log -a",
    "dmesg -t", "mod", "mod -t", "sym -l", "sym -q init_task", "sym jiffies",
    "dis -l schedule 10", "dis -s hello_init 5", "dis -r schedule+20",
    "rd -s jiffies 8", "rd -S init_task 16", "x/8xg &jiffies",
    "kmem -i", "kmem -s", "kmem -v", "kmem -n", "kmem -z", "kmem -V", "kmem -f",
    "files", "vm", "vm -p", "vm -v", "vm -m",
    "struct task_struct.pid,comm init_task", "union rcu_special init_task",
    "p jiffies", "print jiffies", "whatis pid_t", "eval 1+2", "ascii 41424344",
    "foreach bt", "foreach RU bt", "foreach task -R pid", "foreach files", "foreach vm",
    "foreach set", "foreach sig", "foreach net -s", "foreach ps",
    "runq", "runq -t", "runq -m", "runq -g", "irq", "irq -s", "irq -a", "irq -b",
    "timer", "timer -r", "dev", "dev -d", "dev -p", "mount", "net", "net -a", "sig",
    "mach", "mach -c", "mach -m", "swap", "ipcs", "waitq log_wait", "fuser /",
    "list -H modules", "tree -t xarray init_pid_ns", "search -s init_task -l 0x1000 0",
    "vtop init_task", "ptov 1000", "pte 0", "btop 1000", "ptob 1",
    "alias", "alias hex", "* task_struct.pid,comm init_task", "size list_head", "set -v",
    "set radix 16", "repeat -1 p jiffies", "wr jiffies 1", "gdb p jiffies",
    "gdb ptype struct list_head", "gdb info symbol schedule", "gdb info line schedule",
    "py -c 'print(find_task(prog, 1).comm)'", "python -c 'print(1)'", "extend -s",
    "bpf -p 1",
]


#: Lines whose right answer on the swept dumps is no data: what they must say instead
#: (in their text or error), and why. Every other line must succeed with non-empty text
#: and non-empty JSON data.
NO_DATA = {
    # Debian kernels are built without CONFIG_IKCONFIG: the error is the answer
    "sys config": "CONFIG_IKCONFIG is not set",
    # no stack overflowed: crash's one-line all-clear, and no overflow records
    "bt -v": "No stack overflows detected",
    # no audit message was queued when the kernel died
    "log -a": "kernel audit log is empty",
    # the lab guests have no swap: the header alone, no swap devices
    "swap": "SWAP_INFO_STRUCT",
    # kdx never writes memory: the one-line refusal is the answer
    "wr jiffies 1": "never writes",
    # no extension is loaded in the sweep's sessions
    "extend -s": "no extensions loaded",
    # the swept guests load no BPF program (the bpf scenario's does: tests/test_bpf.py)
    "bpf -p 1": "invalid program ID: 1",
}


def test_every_command_word_is_swept() -> None:
    swept = {line.split()[0].split("/")[0] for line in SWEEP}
    assert set(INDEX) - swept == set()


def _json_documents(text: str) -> list[dict]:
    """The JSON documents ``text`` holds, one after another; raises if any is bad."""
    decoder, at, docs = json.JSONDecoder(), 0, []
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return docs
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)


def _missing_output(line: str, ok: bool, out: str, error: str, json_mode: bool
                    ) -> str | None:
    """Why ``line``'s result is not real output, or None when it is."""
    if line in NO_DATA:
        return None if json_mode or NO_DATA[line] in out + error else "did not say why"
    if not ok:
        return "failed"
    if not json_mode:
        return None if out.strip() else "printed nothing"
    try:
        docs = _json_documents(out)
    except ValueError:
        return None  # reported as invalid JSON
    if not any(doc.get("data") not in (None, [], {}, "") for doc in docs):
        return "JSON without data"
    return None


@pytest.fixture(scope="module", params=["6.1 kdump", "6.1 qemu", "6.12 kdump"])
def target(request, lab):  # noqa: ANN001, ANN201 (fixtures)
    kernel, capture = request.param.split()
    fmt = "elf" if capture == "qemu" else "kdump-zlib"
    dump = lab("null-deref-module", kernel=None if kernel == "6.1" else kernel,
               capture=capture, fmt=fmt)
    return dump.target


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_no_command_breaks(target, json_mode: bool) -> None:  # noqa: ANN001
    broken = []
    for line in SWEEP:
        out, err = io.StringIO(), io.StringIO()
        ok = Session(target, json=json_mode, out=out, err=err).execute(line)
        problems = [e for e in err.getvalue().splitlines()
                    if "unexpected" in e or "Traceback" in e]
        if problems:
            broken.append(f"{line}: {problems[0]}")
        elif (missing := _missing_output(line, ok, out.getvalue(), err.getvalue(),
                                         json_mode)) is not None:
            broken.append(f"{line}: {missing}: {err.getvalue().strip()[:200]}")
        elif json_mode:
            try:
                _json_documents(out.getvalue())
            except ValueError as error:
                broken.append(f"{line}: invalid JSON: {error}")
                continue
            broken += [f"{line}: {p}" for p in schema_problems(out.getvalue())]
    assert broken == []
