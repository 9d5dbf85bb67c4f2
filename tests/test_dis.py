"""``dis`` on real lab dumps, against crash 8.0.6 and the lab's truth.

crash runs once per dump on every command below (separated by ``eval`` markers), kdx
runs the same commands in one session, and each section is compared instruction by
instruction: address, ``<symbol+offset>`` and the instruction text, call targets and
``[FTRACE NOP]`` tags included. Then the module init function that crash 8.0.6 cannot
disassemble: kdx must show the faulting instruction with its source line.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from crash_script import crash_sections

from kdx.model.disasm import decode, find_source, spell
from kdx.session.session import Session

_INSN = re.compile(r"^(0x[0-9a-f]+) <([^>]+)>:\t(.*)$")

#: Kernel functions present in both kernels: C, inlined helpers, assembly, retpoline
#: thunks (symbols without a size or type), string instructions.
FUNCTIONS = ["sysrq_handle_crash", "do_one_initcall", "panic", "do_syscall_64",
             "asm_exc_page_fault", "memset", "__x86_indirect_thunk_array", "__schedule"]


def _frames(dump) -> dict:  # noqa: ANN001
    """Addresses the commands need, read with drgn: the panic task's kernel return
    addresses, its user RIP, and (null-deref dumps) the faulting RIP."""
    from drgn.helpers.linux.panic import panic_task

    target = dump.target
    trace = target.prog.stack_trace(panic_task(target.prog))
    kernel = [f.pc for f in trace if f.pc >= 0xFFFF_8000_0000_0000]
    # a return address in the kernel image, not the saved pc itself: crash's gdb marks
    # that one "=>" and crash's dis -r COUNT then shows one instruction too few
    # (docs/crash-differences.md)
    ret = next(pc for pc in kernel if pc != trace[0].pc and pc < 0xFFFF_FFFF_C000_0000)
    return {"fault": trace[0].pc, "kernel": kernel, "return": ret,
            "user": _user_pc(target.prog, panic_task(target.prog))}


def _user_pc(prog, task) -> int:  # noqa: ANN001 (drgn objects)
    """The user RIP saved at the top of the task's kernel stack on entry (the unwinder's
    last frame is not always it: a QEMU dump can end the trace on a stale word)."""
    from drgn import Object

    top = task.stack.value_() + prog["THREAD_SIZE"].value_()
    regs = Object(prog, "struct pt_regs *", top - prog.type("struct pt_regs").size)
    assert regs.cs.value_() & 3 == 3, "the task did not enter the kernel from user mode"
    return regs.ip.value_()


def commands(dump, frames: dict) -> list[str]:  # noqa: ANN001
    """What both tools run, in this order (the crash output is cached by this list)."""
    kernel_pc = frames["return"]
    wanted = [f"dis {f}" for f in FUNCTIONS]
    wanted += [f"dis -r {kernel_pc:x}", f"dis -r {kernel_pc:x} 5", f"dis -l -r {kernel_pc:x} 5",
               "dis -l sysrq_handle_crash", "dis sysrq_handle_crash 2",
               "dis sysrq_handle_crash+5 2", "dis -f sysrq_handle_crash+5",
               "dis -x sysrq_handle_crash", "dis -s sysrq_handle_crash"]
    if dump.truth.get("module"):
        ko = Path(dump.modules) / f"{dump.truth['module']}.ko"
        wanted += [f"mod -s {dump.truth['module']} {ko}", f"dis -l {dump.truth['function']}",
                   f"dis -s {frames['fault']:x}"]
    return wanted




def kdx_sections(dump, wanted: list[str]) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    """(stdout, stderr) of each command in one kdx session on the dump."""
    target = dump.target
    out, err = io.StringIO(), io.StringIO()
    session = Session(target, out=out, err=err)
    sections = {}
    for command in wanted:
        if command.startswith("mod "):
            continue
        o, e = len(out.getvalue()), len(err.getvalue())
        session.execute(command)
        text = out.getvalue()[o:]
        sections[command] = ("\n".join(line.rstrip() for line in text.splitlines()).strip("\n"),
                             err.getvalue()[e:])
    assert "Traceback" not in err.getvalue()
    return sections


@pytest.fixture(scope="module", params=["6.1 null-deref", "6.1 sysrq", "6.12 null-deref"])
def both(request, lab, crash):  # noqa: ANN001
    kernel, scenario = request.param.split()
    dump = lab("null-deref-module" if scenario == "null-deref" else "sysrq",
               kernel=None if kernel == "6.1" else kernel)
    frames = _frames(dump)
    wanted = commands(dump, frames)
    return dump, frames, crash_sections(crash, dump, wanted), kdx_sections(dump, wanted)


def instructions(text: str) -> list[tuple[int, str, str]]:
    """(address, symbol, instruction with blank runs collapsed) of each dis line."""
    out = []
    for line in text.splitlines():
        m = _INSN.match(line)
        if m:
            out.append((int(m.group(1), 16), m.group(2), " ".join(m.group(3).split())))
    return out


# --- against crash -------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("function", FUNCTIONS)
def test_whole_functions_match_crash(both, function: str) -> None:
    """Every instruction of the function: address, symbol+offset, mnemonic, operands,
    call/jump targets, %rip comments and [FTRACE NOP] (gdb's spelling, which kdx
    produces from capstone)."""
    dump, frames, theirs, ours = both
    command = f"dis {function}"
    expected = instructions(theirs[command])
    assert len(expected) >= 2, theirs[command]
    assert instructions(ours[command][0]) == expected


@pytest.mark.oracle
@pytest.mark.parametrize("variant", ["dis -r {pc:x}", "dis -r {pc:x} 5",
                                     "dis sysrq_handle_crash 2", "dis sysrq_handle_crash+5 2",
                                     "dis -f sysrq_handle_crash+5"])
def test_ranges_match_crash(both, variant: str) -> None:
    """-r up to a return address of the panic task (the whole head of the function, or
    the last five), COUNT instructions, and -f to the end of the function."""
    dump, frames, theirs, ours = both
    pc = frames["return"]
    command = variant.format(pc=pc)
    expected = instructions(theirs[command])
    assert expected
    got = instructions(ours[command][0])
    assert got == expected
    if "-r" in command:
        assert got[-1][0] == pc
    if command.endswith(" 5") or command.endswith(" 2"):
        assert len(got) == int(command.split()[-1])


@pytest.mark.oracle
def test_hex_offsets_match_crash(both) -> None:
    dump, frames, theirs, ours = both
    expected = instructions(theirs["dis -x sysrq_handle_crash"])
    assert any("+0x" in symbol for _, symbol, _ in expected)
    assert instructions(ours["dis -x sysrq_handle_crash"][0]) == expected


@pytest.mark.oracle
def test_line_numbers_match_crash(both) -> None:
    """-l: crash's ``build-dir/file.c: LINE`` line before each group, the same lines
    (the kernel's sources are not on this machine, so no source text is added)."""
    dump, frames, theirs, ours = both
    pc = frames["return"]
    for command in ("dis -l sysrq_handle_crash", f"dis -l -r {pc:x} 5"):
        expected = theirs[command].splitlines()
        assert any(re.search(r"\.[ch]: \d+$", line) for line in expected), theirs[command]
        assert ours[command][0].splitlines() == expected


@pytest.mark.oracle
def test_source_listing_header_matches_crash(both) -> None:
    """-s on a kernel function: crash's FILE:/LINE: header; without the kernel's
    sources both tools then say the source is not available."""
    dump, frames, theirs, ours = both
    expected = theirs["dis -s sysrq_handle_crash"].splitlines()[:2]
    assert expected[0].startswith("FILE: ") and expected[1].startswith("LINE: ")
    out, err = ours["dis -s sysrq_handle_crash"]
    assert out.splitlines()[:2] == expected
    assert "source code is not available" in err and err.count("\n") == 1


# --- module code: where crash fails -----------------------------------------------------------


def _console_rip(dump) -> tuple[str, int]:  # noqa: ANN001
    """The faulting function and offset the kernel printed (``RIP: 0010:hello_init+0x11``)."""
    text = (dump.dir / "console.log").read_text(errors="replace")
    m = re.search(r"RIP: 0010:(\w+)\+0x([0-9a-f]+)/", text)
    assert m, "no kernel RIP line in the console log"
    return m.group(1), int(m.group(2), 16)


@pytest.mark.oracle
def test_module_init_disassembles_with_source(both) -> None:
    """crash 8.0.6 cannot disassemble the module's init function, even after ``mod -s``;
    kdx shows it with the .ko's line numbers and the module's source text, and the
    faulting instruction (the RIP the kernel printed) is the NULL store on the truth's
    source line."""
    dump, frames, theirs, ours = both
    if not dump.truth.get("module"):
        pytest.skip("no module in this scenario")
    function = dump.truth["function"]
    assert "symbol not found" in theirs[f"dis -l {function}"]
    assert "not a kernel text address" in theirs[f"dis -s {frames['fault']:x}"]

    name, offset = _console_rip(dump)
    assert name == function
    text = ours[f"dis -l {function}"][0]
    lines = text.splitlines()
    fault = [i for i, line in enumerate(lines) if line.startswith(f"{frames['fault']:#x} ")]
    assert len(fault) == 1, text
    line = lines[fault[0]]
    assert line.startswith(f"{frames['fault']:#x} <{function}+{offset}>:\t")
    assert " ".join(line.split("\t", 1)[1].split()) == "movb $0x1,0x0"
    # the group header and the source text just above the faulting instruction
    header = next(lines[i] for i in range(fault[0] - 1, -1, -1) if re.search(r": \d+$", lines[i]))
    assert header.endswith(f"{dump.truth['source_file']}: {dump.truth['source_line']}")
    assert lines[fault[0] - 1].startswith(f"{dump.truth['source_line']}\t")
    assert "*p = 1;" in lines[fault[0] - 1]
    assert lines[0].endswith(f"{dump.truth['source_file']}: {int(lines[1].split()[0])}")


@pytest.mark.oracle
def test_module_source_listing_marks_the_line(both) -> None:
    dump, frames, theirs, ours = both
    if not dump.truth.get("module"):
        pytest.skip("no module in this scenario")
    out, err = ours[f"dis -s {frames['fault']:x}"]
    lines = out.splitlines()
    assert lines[0].startswith("FILE: ") and lines[0].endswith(dump.truth["source_file"])
    assert lines[1] == f"LINE: {dump.truth['source_line']}"
    marked = [line for line in lines if line.startswith("* ")]
    assert marked == [f"* {dump.truth['source_line']}\t\t*p = 1; /* KDX-CRASH-LINE */"]
    numbers = [int(line[2:].split("\t")[0]) for line in lines[3:] if line.strip()]
    assert numbers == list(range(numbers[0], numbers[-1] + 1))
    assert numbers[0] == dump.truth["source_line"] - 5 and lines[-1].endswith("\t}")
    assert not err


@pytest.mark.oracle
def test_user_code_matches_crash(lab, crash) -> None:  # noqa: ANN001
    """-u on a dump that kept user memory (QEMU's, unfiltered): the panic task's user
    code at its user RIP, as crash shows it through gdb."""
    dump = lab("sysrq", capture="qemu", fmt="elf")
    pc = _frames(dump)["user"]
    wanted = [f"dis -u {pc:x} 4"]
    theirs = crash_sections(crash, dump, wanted)
    ours = kdx_sections(dump, wanted)
    expected = theirs[wanted[0]].splitlines()
    assert len(expected) == 4 and expected[0].startswith(f"   {pc:#x}:\t")
    assert [" ".join(line.split()) for line in ours[wanted[0]][0].splitlines()] == \
        [" ".join(line.split()) for line in expected]


# --- kdx on its own --------------------------------------------------------------------------


def test_module_dis_l_names_file_and_line_without_the_source(null_deref, tmp_path) -> None:  # noqa: ANN001
    """Without the source file kdx still names the file and line of each group."""
    from kdx.model.disasm import disassemble, source_dirs
    from kdx.render.crash.dis import render_disassembly

    target = null_deref.target
    assert Path(null_deref.modules) in source_dirs(target.prog, null_deref.vmcore.parent)
    start = target.prog.symbol(null_deref.truth["function"]).address
    dis = disassemble(target.prog, start, end=start + 0x20, source_dirs=[tmp_path])
    line = null_deref.truth["source_line"]
    with_text = render_disassembly(dis, lines=True)
    assert re.search(rf"^{line}\t\t\*p = 1;", with_text, re.M)
    # as if the source were nowhere on this machine
    text = render_disassembly(replace(dis, sources=[]), lines=True)
    assert re.search(rf"hello-crash\.c: {line}\n0x[0-9a-f]+ <hello_init\+\d+>:\tmovb", text)
    assert not re.search(r"^\d+\t", text, re.M)


def test_sources_are_found_by_name_beside_the_modules(null_deref) -> None:  # noqa: ANN001
    """A source whose debug-info path does not exist here is found by its name in the
    module directories."""
    found = find_source("/nonexistent/build/dir/hello-crash.c", [Path(null_deref.modules)])
    assert found == Path(null_deref.modules) / "hello-crash.c"
    assert find_source("/nonexistent/build/dir/nothing.c", [Path(null_deref.modules)]) is None


def test_json_parses(null_deref, kdx) -> None:  # noqa: ANN001
    proc = kdx(null_deref.vmcore, "--json", "-c", f"dis -l {null_deref.truth['function']}",
               check=True)
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "dis"
    insns = doc["data"]["instructions"]
    assert doc["data"]["module"] == null_deref.truth["module"]
    stores = [i for i in insns if i["mnemonic"] == "movb" and i["operands"] == "$0x1,0x0"]
    assert len(stores) == 1
    assert stores[0]["source_line"] == null_deref.truth["source_line"]
    assert stores[0]["source_file"].endswith(null_deref.truth["source_file"])


def test_errors_are_one_line(null_deref, kdx) -> None:  # noqa: ANN001
    """Unknown symbols, user code not in the dump, bad option mixes: one line each."""
    user = _frames(null_deref)["user"]
    for command, words in ((f"dis -u {user:x}", "user"), ("dis no_such_symbol", "not found"),
                           ("dis -r -s panic", "mutually exclusive"),
                           ("dis 1000", "not a kernel virtual address")):
        proc = kdx(null_deref.vmcore, "-c", command)
        assert proc.stderr.count("\n") == 1 and words in proc.stderr, (command, proc.stderr)


# --- GNU spelling, instruction by instruction -------------------------------------------------

#: Encodings and how gdb/objdump spell them (checked against crash 8.0.6's gdb 10 and
#: binutils 2.40 objdump).
SPELLINGS = [
    ("0f1f440000", "nopl   0x0(%rax,%rax,1)"),
    ("c604250000000001", "movb   $0x1,0x0"),
    ("48c7c7b9971681", "mov    $0xffffffff811697b9,%rdi"),
    ("f348ab", "rep stos %rax,%es:(%rdi)"),
    ("f348a5", "rep movsq %ds:(%rsi),%es:(%rdi)"),
    ("65488b042528000000", "mov    %gs:0x28,%rax"),
    ("66662e0f1f840000000000", "data16 nopw %cs:0x0(%rax,%rax,1)"),
    ("6690", "xchg   %ax,%ax"),
    ("6aff", "push   $0xffffffffffffffff"),
    ("4883c480", "add    $0xffffffffffffff80,%rsp"),
    ("48d320", "shlq   %cl,(%rax)"),
    ("d1e0", "shl    %eax"),
    ("3effe0", "notrack jmp *%rax"),
    ("488b04c500000080", "mov    -0x80000000(,%rax,8),%rax"),
    ("0fb6470a", "movzbl 0xa(%rdi),%eax"),
    ("4863c7", "movslq %edi,%rax"),
    ("48b8efcdab8967452301", "movabs $0x123456789abcdef,%rax"),
    ("f0480fb11e", "lock cmpxchg %rbx,(%rsi)"),
    ("9c", "pushf"),
    ("c3", "ret"),
    ("ec", "in     (%dx),%al"),
    ("2ee800000000", "cs call 0x6"),
]


@pytest.mark.parametrize(("code", "expected"), SPELLINGS)
def test_gnu_spelling(code: str, expected: str) -> None:
    insn = next(iter(decode(bytes.fromhex(code), 0)))
    spelled = spell(insn)
    mnemonic = " ".join([*spelled.prefixes, spelled.mnemonic])
    operands = ",".join(spelled.operands)
    text = f"{mnemonic:<6} {operands}" if operands else mnemonic
    assert text == expected


# -- dis -b: bytes skipped after ud2 ---------------------------------------------------------


def _bug_commands(target) -> list[str]:  # noqa: ANN001
    """``dis -b`` around the first two ud2 of refcount_warn_saturate (WARNs: ud2 with the
    bug table elsewhere, so crash's default skips nothing)."""
    from kdx.model.disasm import decode

    sym = target.prog.symbol("refcount_warn_saturate")
    code = target.prog.read(sym.address, sym.size)
    ud2 = [i.address - sym.address for i in decode(code, sym.address)
           if i.mnemonic == "ud2"]
    assert len(ud2) >= 2
    first, second = (f"refcount_warn_saturate+{offset:#x}" for offset in ud2[:2])
    return ["dis -b", f"dis -b 2 {first} 4", "dis -b", f"dis {second} 3", "dis -b 0",
            f"dis {second} 4", "dis -b"]


@pytest.mark.oracle
@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_dis_bug_bytes_match_crash(kernel, lab, crash) -> None:  # noqa: ANN001
    from crash_script import crash_sections

    dump = lab("null-deref-module", kernel=None if kernel == "6.1" else kernel)
    target = dump.target
    wanted = _bug_commands(target)
    theirs = crash_sections(crash, dump, wanted)
    out = io.StringIO()
    session = Session(target, out=out, err=io.StringIO())
    ours = []
    for command in wanted:
        start = out.tell()
        assert session.execute(command), command
        ours.append("\n".join(line.rstrip() for line in
                              out.getvalue()[start:].strip("\n").splitlines()))
    # crash_sections keys by command: "dis -b" holds its last run's output
    for command, mine in zip(wanted, ours):
        if wanted.count(command) == 1:
            assert mine == theirs[command], f"{command}:\n{theirs[command]}\n---\n{mine}"
    assert ours[0] == "encoded bytes being skipped after ud2a: 0"
    assert ours[2] == "encoded bytes being skipped after ud2a: 2"
    skipped, plain = ours[3].splitlines(), ours[5].splitlines()
    step = int(skipped[1].split()[0], 16) - int(skipped[0].split()[0], 16)
    assert step == 4 and int(plain[1].split()[0], 16) - int(plain[0].split()[0], 16) == 2
    assert ours[6] == theirs["dis -b"]
