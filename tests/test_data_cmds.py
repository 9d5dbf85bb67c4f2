"""``struct``, ``union``, ``p``, ``whatis``, ``eval`` and ``ascii`` against crash 8.0.6.

crash answers these through gdb; kdx through drgn with gdb's layout. Both run the same
commands in the same order (so gdb's ``$N`` value numbers line up) on the null-deref dump,
each section cut out by crash_script's markers, and are compared line for line. The commands
cover type declarations with and without offsets (anonymous unions, bit fields),
structures in memory with nested members, anonymous unions, arrays, function and symbol
pointers, chars and strings, a per-CPU symbol, and crash's number rules.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from crash_script import crash_parts, kdx_sections
from drgn.helpers.linux.pid import for_each_task

from kdx.model.expr import crash_number
from kdx.render.crash.data import ascii_chart, ascii_text, char_literal, eval_text, string_literal
from kdx.session.session import Session


@pytest.fixture(scope="module")
def target(null_deref):  # noqa: ANN001, ANN201 (fixture)
    return null_deref.target


def _commands(target) -> list[str]:  # noqa: ANN001
    """The commands, with addresses of live objects of this dump filled in."""
    prog = target.prog
    task = next(t for t in for_each_task(prog) if t.comm.string_() == b"fileholder")
    file = task.files.fdt.fd[4]
    return [
        "struct list_head", "struct list_head -o", "struct file -o", "struct task_struct -o",
        "struct mm_struct -o", "struct file.f_flags", "struct task_struct.in_execve",
        f"struct path {file.f_path.address_:x}",
        f"struct file.f_flags,f_mode {file.value_():x}",
        f"struct list_head -o {task.tasks.address_:x}",
        f"struct fs_struct {task.fs.value_():x}",
        f"struct mm_struct {task.mm.value_():x}",
        "p jiffies", "p init_task.pid", "p &init_task", "p init_task.comm", "p linux_banner",
        "p nr_cpu_ids", "p init_task.se.load", "p schedule", "p runqueues",
        "p sizeof(struct task_struct)", "p -x jiffies", "p init_task.mm",
        "whatis jiffies", "whatis task_struct", "whatis struct list_head",
        "whatis linux_banner", "whatis schedule", "whatis atomic_t", "whatis init_task",
        "whatis enum pid_type", "whatis pid_type", "whatis int",
        "eval 1+2", "eval 0x1000 * 4", "eval (1 << 20)", "eval 100 / 7", "eval -1",
        "eval 0xffffffffffffffff", "eval 10k", "eval ff",
        "ascii 0x41424344", "ascii 4142434445464748",
    ]


@pytest.fixture(scope="module")
def sections(target, null_deref, crash) -> tuple[dict[str, str], dict[str, str]]:  # noqa: ANN001
    wanted = _commands(target)
    theirs, (ours, err) = crash_parts(crash, null_deref, wanted), _kdx_sections(target, wanted)
    assert "Traceback" not in err and "unexpected" not in err
    return dict(zip(wanted, ours)), dict(zip(wanted, theirs))


@pytest.mark.oracle
def test_every_command_prints_what_crash_prints(sections) -> None:  # noqa: ANN001
    ours, theirs = sections
    differ = [c for c in ours if ours[c] != theirs[c]]
    assert not differ, "\n\n".join(f"{c}:\n--- crash\n{theirs[c]}\n--- kdx\n{ours[c]}"
                                   for c in differ[:3])


@pytest.mark.oracle
def test_sections_hold_real_values(sections) -> None:  # noqa: ANN001
    ours, _ = sections
    assert ours["p init_task.pid"].endswith("= 0")
    assert ours["p init_task.comm"] == '$4 = "swapper/0\\000\\000\\000\\000\\000\\000"'
    assert re.fullmatch(r"jiffies = \$1 = \d+", ours["p jiffies"])
    assert ours["p &init_task"].startswith("$3 = (struct task_struct *) 0xffffffff")
    assert ours["p &init_task"].endswith(" <init_task>")
    assert ours["p nr_cpu_ids"] == "nr_cpu_ids = $6 = 2"
    assert "[0]: " in ours["p runqueues"] and "[1]: " in ours["p runqueues"]
    assert ours["whatis jiffies"] == "volatile unsigned long jiffies;"
    assert ours["struct list_head -o"].splitlines()[1:3] == [
        "   [0] struct list_head *next;", "   [8] struct list_head *prev;"]
    assert ours["struct list_head"].endswith("SIZE: 16")
    bitfield = [line for line in ours["struct task_struct -o"].splitlines()
                if "in_execve : 1;" in line]
    assert bitfield and bitfield[0].lstrip().startswith("[")
    assert "mm_mt = {" in ours[next(c for c in ours if c.startswith("struct mm_struct f"))]


@pytest.mark.oracle
def test_unknown_names_are_one_line_errors(target) -> None:  # noqa: ANN001
    out, err = io.StringIO(), io.StringIO()
    session = Session(target, out=out, err=err)
    assert not session.execute("struct nosuch")
    assert not session.execute("union thread_union")
    assert not session.execute("p nosuch")
    assert not session.execute("whatis nosuch_type")
    lines = err.getvalue().splitlines()
    assert len(lines) == 4
    assert "invalid data structure reference: nosuch" in lines[0]
    assert 'no symbol "nosuch"' in lines[2]


@pytest.mark.oracle
def test_p_follows_pointers_and_members(target) -> None:  # noqa: ANN001
    """Expressions crash hands to gdb: ->, [], &, casts. (Quoted: the session treats
    an unquoted > as redirection.)"""
    out = io.StringIO()
    session = Session(target, out=out)
    assert session.execute("p 'init_task.fs->root'")
    assert session.execute("p 'init_task.thread_pid->numbers[0].nr'")
    assert session.execute("p (unsigned long)&init_task + 8")
    text = out.getvalue().splitlines()
    assert text[0] == "$1 = {" and text[1].startswith("  mnt = 0x")
    assert text[-2] == "$2 = 0"
    address = int(text[-1].split()[-1])
    assert address == target.prog["init_task"].address_ + 8


@pytest.mark.oracle
def test_json_data_commands(target) -> None:  # noqa: ANN001
    out = io.StringIO()
    session = Session(target, out=out, json=True)
    for command in ("p jiffies", "eval 0x10", "struct list_head", "whatis schedule"):
        assert session.execute(command)
    decoder = json.JSONDecoder()
    text, pos, docs = out.getvalue(), 0, []
    while text[pos:].strip():
        doc, end = decoder.raw_decode(text[pos:].lstrip())
        pos += len(text[pos:]) - len(text[pos:].lstrip()) + end
        docs.append(doc)
    assert [d["kind"] for d in docs] == ["p", "eval", "struct", "whatis"]
    printed = docs[0]["data"]
    assert printed["symbol"] == "jiffies" and printed["history"] == 1
    assert printed["value"]["type"] == "volatile unsigned long"
    assert printed["value"]["address"] == hex(target.prog["jiffies"].address_)
    assert printed["value"]["word"] == hex(target.prog["jiffies"].value_())
    assert docs[1]["data"]["value"] == "0x10"
    assert docs[2]["data"]["size"] == 16
    assert [line["member"] for line in docs[2]["data"]["layout"]["lines"]] == \
        [None, "next", "prev", None]
    assert docs[3]["data"]["kind"] == "symbol"
    assert docs[3]["data"]["declaration"] == "void schedule(void)"
    assert "text" not in docs[0]["data"] and "text" not in docs[3]["data"]


# -- without a dump: crash's number and character rules -----------------------------------


def test_eval_layout() -> None:
    assert eval_text(0x4000).splitlines() == [
        "hexadecimal: 4000  (16KB)", "    decimal: 16384", "      octal: 40000",
        "     binary: " + format(0x4000, "064b")]
    assert eval_text(-1 & (2**64 - 1)).splitlines()[1] == \
        "    decimal: 18446744073709551615  (-1)"
    assert eval_text(3 << 30).splitlines()[0] == "hexadecimal: c0000000  (3GB)"


def test_crash_number_rules() -> None:
    assert crash_number(None, "100") == 100
    assert crash_number(None, "ff") == 255
    assert crash_number(None, "0x10") == 16
    assert crash_number(None, "10k") == 10240
    assert crash_number(None, "2m") == 2 << 20


def test_ascii_and_chars() -> None:
    assert ascii_text(0x41424344) == "0000000041424344: DCBA<NUL><NUL><NUL><NUL>"
    assert ascii_text(0x4142434445464748) == "4142434445464748: HGFEDCBA"
    assert ascii_text(0x80FF7F1B) == "0000000080ff7f1b: <ESC><DEL><ff><80><NUL><NUL><NUL><NUL>"
    chart = ascii_chart().splitlines()
    assert chart[3] == "  0 | NUL DLE  SP  0   @   P   `   p"
    assert chart[-1] == "  F |  SI  US  /   ?   O   _   o  DEL"
    assert char_literal(0) == "'\\000'" and char_literal(39) == "'\\''"
    assert string_literal(b'a"\n\x80') == '"a\\"\\n\\200"'


# -- struct/union options: -c, -l, -r, -p, -u, -f, members, :cpuspec -------------------


def _kdx_sections(target, commands: list[str]) -> tuple[list[str], str]:  # noqa: ANN001
    """kdx's outputs in order (repeats kept) and its stderr."""
    run = kdx_sections(target, commands)
    return run.parts, run.stderr


def _struct_option_commands(target) -> list[str]:  # noqa: ANN001
    prog = target.prog
    task = next(t for t in for_each_task(prog) if t.comm.string_() == b"fileholder")
    tasks = f"{task.tasks.address_:x}"
    file = next(f for f in (task.files.fdt.fd[i] for i in range(3, 8)) if f)
    return [
        f"struct list_head {tasks} -c 2", f"struct list_head {tasks} 3",
        f"struct list_head -c -2 {tasks}",
        f"struct task_struct.pid,comm -l task_struct.tasks {tasks}",
        f"struct task_struct.pid -l {drgn_offset(prog, 'tasks')} {tasks}",
        f"struct task_struct.pid -l {drgn_offset(prog, 'tasks'):#x} {tasks}",
        f"struct list_head -r {tasks}", f"struct task_struct.pid -r {task.value_():x}",
        f"struct file -r {file.value_():x}", f"struct list_head -r {tasks} 2",
        f"struct task_struct.mm {task.value_():x} -p",
        f"struct task_struct.comm {task.value_():x} -p",
        f"struct fs_struct -p {task.fs.value_():x}",
        f"struct file.f_op {file.value_():x} -p",
        f"struct file.private_data {file.value_():x} -p",
        f"struct file -p {file.value_():x}",
        "struct rq.nr_running,cpu runqueues:a", "struct rq.cpu runqueues:0",
        "struct rq.cpu runqueues:", "struct rq.nr_running runqueues:0,1",
        "struct rq.cpu -x runqueues:1",
        f"struct list_head -x {tasks} -c 2",
        f"struct task_struct.pid,tgid {task.value_():x} 2",
        f"struct task_struct.pid,comm -l task_struct.tasks {tasks} -c 2",
        f"struct task_struct.se.on_rq -p {task.value_():x}",
        f"struct list_head -o {tasks} 2", "struct list_head -f 0",
        "p jiffies",
    ]


def drgn_offset(prog, member: str) -> int:  # noqa: ANN001
    import drgn

    return drgn.offsetof(prog.type("struct task_struct"), member)


def _compare_struct_options(target, dump, crash) -> list[str]:  # noqa: ANN001
    commands = _struct_option_commands(target)
    theirs = crash_parts(crash, dump, commands)
    ours, err = _kdx_sections(target, commands)
    assert "Traceback" not in err
    differ = [f"{c}:\n--- crash\n{t[:3000]}\n--- kdx\n{o[:3000]}"
              for c, t, o in zip(commands, theirs, ours) if t != o]
    assert not differ, "\n\n".join(differ[:2])
    return ours


@pytest.mark.oracle
def test_struct_options_match_crash_61(target, null_deref, crash) -> None:  # noqa: ANN001
    ours = _compare_struct_options(target, null_deref, crash)
    by_command = dict(zip(_struct_option_commands(target), ours))
    percpu = by_command["struct rq.nr_running,cpu runqueues:a"].splitlines()
    assert percpu[0].startswith("[0]: ") and "  cpu = 0," in percpu
    assert any(line.startswith("[1]: ") for line in percpu) and "  cpu = 1," in percpu
    deref = next(v for k, v in by_command.items() if k.startswith("struct file.f_op"))
    assert deref.splitlines()[1].startswith("  -> <") and deref.endswith("}")
    raw = next(v for k, v in by_command.items() if k.startswith("struct list_head -r")
               and not k.endswith(" 2"))
    assert re.fullmatch(r"[0-9a-f]{16}:  [0-9a-f]{16} [0-9a-f]{16}   .{16}", raw)
    # gdb numbered every value -p printed: the p after them goes on from there
    assert not ours[-1].startswith("jiffies = $1 ")


@pytest.mark.oracle
def test_struct_options_match_crash_612(lab, crash) -> None:  # noqa: ANN001
    dump = lab("null-deref-module", kernel="6.12")
    target = dump.target
    ours = _compare_struct_options(target, dump, crash)
    by_command = dict(zip(_struct_option_commands(target), ours))
    # the dump file's first bytes: the kdump header's signature, "KDUMP   "
    assert "next = 0x202020504d55444b," in by_command["struct list_head -f 0"]
    assert "  cpu = 1," in by_command["struct rq.nr_running,cpu runqueues:a"]


@pytest.mark.oracle
def test_struct_option_errors(target) -> None:  # noqa: ANN001
    out, err = io.StringIO(), io.StringIO()
    session = Session(target, out=out, err=err)
    assert not session.execute("struct list_head -p")
    assert not session.execute("struct list_head -c 2")
    assert not session.execute("struct list_head -l nosuch.member ffffffff81000000")
    lines = err.getvalue().splitlines()
    assert "-p option requires address argument" in lines[0]
    assert "no kernel virtual address argument entered" in lines[1]
    assert "invalid -l option" in lines[2]


@pytest.mark.oracle
def test_struct_user_memory_matches_crash(lab, crash) -> None:  # noqa: ANN001
    """``-u`` reads the current task's user memory: a QEMU dump keeps user pages (the
    command line of ``sh -c "echo c > /proc/sysrq-trigger"`` is at its arg_start)."""
    dump = lab("sysrq", capture="qemu", fmt="elf")
    target = dump.target
    session = Session(target, out=io.StringIO(), err=io.StringIO())
    start = session.current_task.mm.arg_start.value_()
    commands = [f"struct list_head -u {start:x}", f"struct list_head -u {start:x} 2",
                f"struct list_head -u -r {start:x}"]
    theirs = crash_parts(crash, dump, commands)
    ours, err = _kdx_sections(target, commands)
    assert ours == theirs, err
    assert ours[2].endswith("sh.-c.echo c > /")
    assert "next = 0x" in ours[0] and ours[1].count("struct list_head {") == 2


@pytest.mark.oracle
def test_struct_options_in_json(target) -> None:  # noqa: ANN001
    out = io.StringIO()
    session = Session(target, out=out, json=True)
    task = next(t for t in for_each_task(target.prog) if t.comm.string_() == b"fileholder")
    assert session.execute(f"struct list_head {task.tasks.address_:x} -c 2")
    assert session.execute("struct rq.cpu runqueues:a")
    decoder = json.JSONDecoder()
    text, pos, docs = out.getvalue(), 0, []
    while text[pos:].strip():
        doc, end = decoder.raw_decode(text[pos:].lstrip())
        pos += len(text[pos:]) - len(text[pos:].lstrip()) + end
        docs.append(doc)
    assert [d["kind"] for d in docs] == ["struct", "struct"]
    heads = docs[0]["data"]
    assert heads["count"] == 2 and len(heads["objects"]) == 2
    first = heads["objects"][0]["value"]
    assert first["address"] == hex(task.tasks.address_)
    assert [(m["name"], m["pointer"]) for m in first["members"]] == \
        [("next", hex(task.tasks.next.value_())), ("prev", hex(task.tasks.prev.value_()))]
    cpus = docs[1]["data"]["cpus"]
    assert len(cpus) >= 2
    assert [c["objects"][0]["members"][0]["value"]["value"] for c in cpus] == \
        [c["cpu"] for c in cpus]


@pytest.mark.oracle
def test_print_formats_and_hex_chars_match_crash(null_deref, crash) -> None:  # noqa: ANN001
    from crash_script import crash_sections, kdx_sections

    target = null_deref.target
    sock = f"{target.prog['init_net'].address_:x}"  # any struct with char members will do
    commands = ["p/x jiffies", "p/d jiffies", "p -x jiffies", "p/x init_task.pid",
                "struct -x task_struct.prio,comm init_task",
                f"struct -x net.ipv4.sysctl_icmp_echo_ignore_broadcasts {sock}",
                f"struct net.ipv4.sysctl_icmp_echo_ignore_broadcasts {sock}"]
    theirs = crash_sections(crash, null_deref, commands)
    ours = kdx_sections(target, commands)
    assert not ours.failed, ours.stderr
    for command in commands:
        assert ours.sections[command] == theirs[command], command
    assert ours.sections["p/x jiffies"].startswith("$")  # no "jiffies = " after p/FMT
    assert "'" not in ours.sections[commands[5]]  # -x: a char is a bare number
