"""``bt`` and ``foreach bt`` on real lab dumps, against crash 8.0.6 and the lab's truth.

crash runs once per dump on every option tested here (the outputs are split on
crash_script's markers); kdx runs in-process on a session per dump, so each command's text is
exactly what the command printed. Where kdx differs from crash on purpose (names of
module init functions, crash's frame made of the stack's alignment padding after a
kernel-mode exception, the source line of a call, the kdump path on QEMU dumps) the
comparison normalises that one thing, and docs/crash-differences.md says why.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from crash_script import crash_sections as script_sections

from kdx.model.stack import StackReader
from kdx.session.session import Session

#: The commands crash runs on each dump, in this order (one cached crash run per dump).
ORACLE = ("bt", "bt -a", "bt -l", "bt -f", "bt -t", "bt -e", "bt -sx", "foreach bt")
#: More options, on the null-deref dump only.
ORACLE_EXTRA = ("bt -s", "bt -T", "bt -E", "bt 1", "bt -c 1", "foreach insmod 1 bt")

_HEADER = re.compile(r'^PID: (\d+)\s+TASK: ([0-9a-f]+)\s+CPU: (\S+)\s+COMMAND: "(.*)"$')
_FRAME = re.compile(r"^\s*#(\d+) \[([0-9a-f]+)\] (\S+) at ([0-9a-f]+)(?: \[(\S+)\])?$")
_EXCEPTION_RIP = re.compile(r"^\s+\[exception RIP: (.*)\]$")
_REGISTER = re.compile(r"\b([A-Z0-9_]+): ([0-9a-f]+)\b")
_SOURCE = re.compile(r"^    (\S.*): (\d+)$")
_CONSOLE_RIP = re.compile(r"RIP: 0010:(\w+)\+0x([0-9a-f]+)/0x[0-9a-f]+(?: \[(\w+)\])?")
#: crash's names for the init text of a module it has no init symbols for.
_INIT_TEXT = re.compile(r"_MODULE_INIT(?:_TEXT)?_START_\w+")


# --- running both tools -------------------------------------------------------------------


def crash_sections(crash, dump, commands=ORACLE) -> dict[str, str]:  # noqa: ANN001
    return script_sections(crash, dump, list(commands))


_sessions: dict[tuple[str, bool], Session] = {}


def session_for(dump, *, json_mode: bool = False) -> Session:  # noqa: ANN001
    key = (str(dump.vmcore), json_mode)
    if key not in _sessions:
        target = dump.target
        _sessions[key] = Session(target, json=json_mode)
    return _sessions[key]


def run(dump, line: str, *, json_mode: bool = False) -> str:  # noqa: ANN001
    session = session_for(dump, json_mode=json_mode)
    session.out, session.err = io.StringIO(), io.StringIO()
    assert session.execute(line), session.err.getvalue()
    assert "unexpected" not in session.err.getvalue()
    return session.out.getvalue().rstrip("\n")


# --- parsing bt text ----------------------------------------------------------------------


@dataclass
class Trace:
    pid: int
    task: str
    cpu: str
    comm: str
    frames: list[tuple[int, str, str, str, str | None]] = field(default_factory=list)
    exceptions: list[tuple[str | None, dict[str, str]]] = field(default_factory=list)
    sources: dict[int, tuple[str, int]] = field(default_factory=dict)
    separators: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        return [name for _, _, name, _, _ in self.frames]


def parse_bt(text: str) -> list[Trace]:
    """Tasks, frames (level, slot, name, address, module), exception frames (RIP name,
    registers), ``-l`` lines by level, and separators."""
    traces: list[Trace] = []
    rip: str | None = None
    registers: dict[str, str] = {}
    last_level: int | None = None
    for line in text.splitlines():
        if m := _HEADER.match(line):
            traces.append(Trace(int(m[1]), m[2], m[3], m[4]))
            last_level = None
            continue
        if not traces:
            continue
        trace = traces[-1]
        if m := _FRAME.match(line):
            trace.frames.append((int(m[1]), m[2], m[3], m[4], m[5]))
            last_level = int(m[1])
        elif m := _EXCEPTION_RIP.match(line):
            rip = m[1]
        elif line.startswith("    RIP: "):
            registers = dict(_REGISTER.findall(line))
        elif line.strip().startswith(("RAX:", "RDX:", "RBP:", "R10:", "R13:")):
            registers.update(_REGISTER.findall(line))
        elif line.strip().startswith("ORIG_RAX:"):
            registers.update(_REGISTER.findall(line))
            trace.exceptions.append((rip, registers))
            rip, registers, last_level = None, {}, None
        elif line.startswith("--- <"):
            trace.separators.append(line)
        elif (m := _SOURCE.match(line)) and last_level is not None:
            trace.sources[last_level] = (Path(m[1]).name, int(m[2]))
    return traces


# --- normalising what differs on purpose --------------------------------------------------


def init_function_names(dump) -> dict[str, str]:  # noqa: ANN001
    """crash's ``_MODULE_INIT_START_<module>`` for each module still in init, and the
    name of its init function (on 6.1 the init text starts with that function)."""
    from drgn.helpers.linux.module import for_each_module

    prog = session_for(dump).prog
    reader = StackReader(prog)
    coming = prog.constant("MODULE_STATE_COMING").value_()
    names = {}
    for mod in for_each_module(prog):
        if mod.state.value_() == coming:
            init = reader.symbol(mod.init.value_())
            assert init is not None
            names[f"_MODULE_INIT_START_{mod.name.string_().decode()}"] = init.name
    return names


def normalise_crash(text: str, dump) -> str:  # noqa: ANN001
    text = drop_padding_frames(text)
    for crash_name, ours in init_function_names(dump).items():
        text = text.replace(crash_name, ours)
    return text


_KERNEL_EFRAME = re.compile(r"^\s+RIP: ([0-9a-f]{16})\s+RSP: ([0-9a-f]{16})\s")
_EFRAME_END = re.compile(r"^\s+ORIG_RAX: [0-9a-f]+\s+CS: ([0-9a-f]+)\s")
_FRAME_NUMBER = re.compile(r"^\s*#\d+")


def drop_padding_frames(text: str) -> str:
    """crash's text without the one frame it makes of the stack's alignment padding.

    Before pushing a kernel-mode exception frame the CPU aligns the stack to 16 bytes,
    so when the interrupted RSP ends in 8 the word just below it is padding, still
    holding whatever was last written there -- often the return address of the call
    that returned just before the fault, which is the exception RIP itself. crash
    8.0.6 resumes its stack scan at the end of ``pt_regs`` instead of at the saved RSP
    and lists that stale word as a frame (docs/crash-differences.md). Exactly that line
    goes: the first frame after a kernel-mode exception frame whose slot is RSP - 8
    and whose address is the RIP, with its ``-l`` source line; the frames after it in
    the same task are numbered one lower. Nothing else is touched.
    """
    out: list[str] = []
    pending: tuple[str, str] | None = None   # (RIP, RSP) of the last kernel-mode frame
    registers: tuple[str, str] | None = None
    shift = 0
    dropping = False
    for line in text.splitlines():
        if _HEADER.match(line):
            pending, registers, shift, dropping = None, None, 0, False
        elif m := _KERNEL_EFRAME.match(line):
            registers = (m[1], m[2])
        elif (m := _EFRAME_END.match(line)) and registers:
            pending = registers if int(m[1], 16) & 3 == 0 else None
            registers = None
        elif m := _FRAME.match(line):
            dropping = False
            if pending and m[4] == pending[0] and int(m[2], 16) == int(pending[1], 16) - 8:
                pending, shift, dropping = None, shift + 1, True
                continue
            pending = None
            if shift:
                line = _FRAME_NUMBER.sub(f"#{int(m[1]) - shift}".rjust(3), line, count=1)
        elif dropping and _SOURCE.match(line):
            continue
        out.append(line)
    return "\n".join(out)


def neutral_frames(trace: Trace) -> list[tuple[str, str, str | None]]:
    """crash's frames (parsed from text that went through drop_padding_frames) with
    crash's names for init text made neutral: (slot, address, module) + name."""
    return [(sp, pc, module, "<init>" if _INIT_TEXT.match(name) else name)
            for _, sp, name, pc, module in trace.frames]


# --- the dumps ----------------------------------------------------------------------------

#: kdump dumps of the 6.1 kernel, where crash and kdx print the same text, and the
#: scenario each comes from.
KDUMP_61 = ["null-deref-module", "sysrq", "gpf", "soft-lockup", "irq-context"]


def dump_of(lab, scenario: str, kernel: str | None = None):  # noqa: ANN001, ANN201
    return lab(scenario, kernel=kernel) if kernel else lab(scenario)


# --- against crash: text ------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("scenario", KDUMP_61)
@pytest.mark.parametrize("command", [c for c in ORACLE if c != "bt -l"])
def test_bt_text_matches_crash(scenario: str, command: str, lab, crash) -> None:  # noqa: ANN001
    """Line for line, once crash's init-text names are replaced by the init function's
    own name and its padding frame is dropped: frames, stack slots, exception registers,
    IRQ/NMI separators, -f words, -t text symbols, -e exception frames, -sx offsets, every
    task of foreach."""
    dump = dump_of(lab, scenario)
    theirs = normalise_crash(crash_sections(crash, dump)[command], dump)
    ours = run(dump, command)
    assert theirs.startswith("PID: ")
    assert ours.splitlines() == theirs.splitlines()


@pytest.mark.oracle
@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_only_the_padding_frame_is_dropped(kernel: str, lab, crash) -> None:  # noqa: ANN001
    """On the module crash the normaliser removes at most one frame of crash's bt: the
    word just below the exception's RSP, when crash lists it and its address is the
    exception RIP (whether the padding word still holds that address depends on what
    ran last before the fault, so a build may have it or not); the frames after it are
    renumbered and nothing else changes. On the other 6.1 dumps it changes nothing."""
    dump = lab("null-deref-module", kernel=kernel)
    text = crash_sections(crash, dump)["bt"]
    theirs, kept = parse_bt(text)[0], parse_bt(drop_padding_frames(text))[0]
    registers = theirs.exceptions[0][1]
    slot = f"{int(registers['RSP'], 16) - 8:016x}"
    padding = [(sp, pc) for _, sp, _, pc, _ in theirs.frames
               if sp == slot and pc == registers["RIP"]]
    gone = [(sp, pc) for _, sp, _, pc, _ in theirs.frames
            if (sp, pc) not in {(f[1], f[3]) for f in kept.frames}]
    assert gone == padding
    assert len(theirs.frames) - len(kept.frames) == len(padding) <= 1
    assert [lvl for lvl, *_ in kept.frames] == list(range(len(kept.frames)))
    assert kept.exceptions == theirs.exceptions
    if kernel == "6.1":
        for scenario in KDUMP_61[1:]:
            other = crash_sections(crash, lab(scenario))["bt -a"]
            assert drop_padding_frames(other) == other, scenario


@pytest.mark.oracle
def test_more_options_match_crash(null_deref, crash) -> None:  # noqa: ANN001
    """-s (decimal offsets), -T (the whole stack), bt PID, bt -c CPU, foreach with
    selectors; and -E up to where crash 8.0.6 gives up (it cannot name the MCE stack)."""
    sections = crash_sections(crash, null_deref, ORACLE_EXTRA)
    for command in ORACLE_EXTRA:
        theirs = normalise_crash(sections[command], null_deref)
        ours = run(null_deref, command)
        if command == "bt -E":
            stop = theirs.index("CPU 0 (unknown) EXCEPTION STACK:")
            assert "CPU 0 MCE EXCEPTION STACK:" in ours
            assert ours[:stop] == theirs[:stop]
            assert "USER-MODE EXCEPTION FRAME AT:" in theirs[:stop]
        else:
            assert ours.splitlines() == theirs.splitlines(), command


# --- against crash: 6.12 and QEMU ---------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("command", ["bt", "bt -a", "foreach bt"])
def test_612_frames_match_crash(command: str, lab, crash) -> None:  # noqa: ANN001
    """On 6.12, crash names the module's init text by offset from its start (which now
    begins with the function's padding) and lists its padding frame (drop_padding_frames);
    everything else -- tasks, slots, addresses, names, registers, the NMI separator of
    a CPU the crash NMI stopped in the kernel -- is the same."""
    dump = lab("null-deref-module", kernel="6.12")
    theirs = parse_bt(drop_padding_frames(crash_sections(crash, dump)[command]))
    ours = parse_bt(run(dump, command))
    assert [(t.pid, t.task, t.cpu, t.comm) for t in ours] == \
        [(t.pid, t.task, t.cpu, t.comm) for t in theirs]
    assert len(theirs) >= (2 if command == "bt -a" else 1)
    for mine, their in zip(ours, theirs):
        assert [(sp, pc, mod, "<init>" if mod and name == "hello_init" else name)
                for _, sp, name, pc, mod in mine.frames] == neutral_frames(their)
        assert [lvl for lvl, *_ in mine.frames] == [lvl for lvl, *_ in their.frames] == \
            list(range(len(mine.frames)))
        assert [regs for _, regs in mine.exceptions] == [regs for _, regs in their.exceptions]
        assert mine.separators == their.separators
    if command == "bt -a":
        # the other CPU was stopped by the crash NMI: its trace starts on the NMI stack,
        # and a separator leads back to the interrupted stack only if that was the
        # kernel's (an idle CPU); from user mode (a busy loop) the user registers follow
        stopped = ours[0]
        assert stopped.names()[:4] == ["crash_nmi_callback", "default_do_nmi", "exc_nmi",
                                       "asm_exc_nmi"]
        from_user = int(stopped.exceptions[0][1]["CS"], 16) & 3 == 3
        assert ("--- <NMI exception stack> ---" in stopped.separators) is not from_user


@pytest.mark.oracle
def test_qemu_dump_shows_every_cpu(lab, crash) -> None:  # noqa: ANN001
    """A QEMU dump has no kdump path: crash 8.0.6 cannot read the stack of the CPU the
    panic stopped, kdx unwinds it from the registers QEMU saved. On the panic CPU kdx
    starts where the CPU really was (in panic's delay loop) and crash at panic's last
    return address; from there the frames are the same."""
    dump = lab("sysrq", capture="qemu", fmt="elf")
    text = crash_sections(crash, dump)["bt -a"]
    assert "read of stack at" in text  # crash fails on the stopped CPU
    theirs = {t.pid: t for t in parse_bt(text)}
    ours = parse_bt(run(dump, "bt -a"))
    assert [t.cpu for t in ours] == ["0", "1"]
    for trace in ours:
        assert trace.frames, f"no frames for PID {trace.pid}"
        assert trace.exceptions and trace.exceptions[-1][1]["CS"] == "0033"
    panic = next(t for t in ours if t.pid == dump.truth["pid"])
    crash_frames = [f[1:] for f in theirs[panic.pid].frames]
    ours_frames = [f[1:] for f in panic.frames]
    assert ours_frames[-len(crash_frames):] == crash_frames
    assert "sysrq_handle_crash" in panic.names()


@pytest.mark.oracle
def test_qemu_oom_panic_cpu_reaches_the_allocator(lab, crash) -> None:  # noqa: ANN001
    """The memhog CPU of a QEMU oom dump: wherever QEMU stopped it (on one boot, on the
    first instruction of a retpoline thunk that no unwind table covers, which ended the
    trace after one frame), the trace reaches the page fault that allocated, and from
    panic on it is crash's."""
    dump = lab("oom", capture="qemu", fmt="elf")
    pid = dump.truth["pid"]
    theirs = parse_bt(crash(dump, [f"bt {pid}"]))[0]
    ours = parse_bt(run(dump, f"bt {pid}"))[0]
    names = ours.names()
    assert "panic" in names and "out_of_memory" in " ".join(names)
    assert names[-1] == "asm_exc_page_fault"
    crash_frames = [f[1:] for f in theirs.frames]
    assert crash_frames and [f[1:] for f in ours.frames][-len(crash_frames):] == crash_frames


# --- against the truth --------------------------------------------------------------------

MODULE_CRASHES = [("null-deref-module", None), ("gpf", None), ("soft-lockup", None),
                  ("irq-context", None), ("null-deref-module", "6.12")]


def _console_rip(dump, function: str) -> tuple[str, int, str | None]:  # noqa: ANN001
    for line in (dump.dir / "console.log").read_text(errors="replace").splitlines():
        m = _CONSOLE_RIP.search(line)
        if m and m[1] == function:
            return m[1], int(m[2], 16), m[3]
    raise AssertionError(f"no RIP line for {function} in the console log")


@pytest.mark.parametrize(("scenario", "kernel"), MODULE_CRASHES)
def test_exception_rip_is_the_culprit(scenario: str, kernel: str | None, lab) -> None:  # noqa: ANN001
    """The panic task's first exception frame names truth's function, at the offset and
    in the module the kernel's own oops line printed."""
    dump = dump_of(lab, scenario, kernel)
    data = json.loads(run(dump, "bt -p", json_mode=True))["data"][0]
    assert data["pid"] == dump.truth["pid"] and data["comm"] == dump.truth["comm"]
    assert data["cpu"] == dump.truth["cpu"] and data["panic"]
    kernel_frames = [e for e in data["exception_frames"] if not e["user_mode"]]
    first = kernel_frames[0]
    name, offset, module = _console_rip(dump, dump.truth["function"])
    assert (first["function"], first["offset"], first["module"]) == \
        (name, offset, dump.truth["module"])
    assert module == dump.truth["module"]
    assert first["registers"]["RIP"] == next(
        f["pc"] for f in data["frames"] if f["is_exception_frame"] and not f["inline"])


def test_sysrq_culprit_is_a_frame(sysrq) -> None:  # noqa: ANN001
    trace = parse_bt(run(sysrq, "bt"))[0]
    assert trace.pid == sysrq.truth["pid"]
    assert sysrq.truth["function"] in trace.names()
    assert trace.names()[:3] == ["machine_kexec", "__crash_kexec", "panic"]


# --- bt -l --------------------------------------------------------------------------------


@pytest.mark.oracle
def test_bt_l_names_the_faulting_source_line(null_deref, crash) -> None:  # noqa: ANN001
    """With the module's debug info the exception frame gets hello-crash.c and truth's
    line; for other frames kdx prints the line of the call, crash the line of the
    instruction after it: where the two are the same line, kdx prints crash's."""
    text = run(null_deref, "bt -l")
    ours = parse_bt(text)[0]
    want = f"{null_deref.truth['source_file']}: {null_deref.truth['source_line']}"
    exception_block = text[text.index("[exception RIP: hello_init+"):]
    assert exception_block.splitlines()[8].endswith(want)
    theirs = parse_bt(drop_padding_frames(crash_sections(crash, null_deref)["bt -l"]))[0]
    prog = session_for(null_deref).prog
    same = 0
    for level, _, _, pc, _ in ours.frames:
        call, after = (prog.source_location(int(pc, 16) - d)[0] for d in (1, 0))
        if (call.filename, call.line) != (after.filename, after.line):
            continue
        assert ours.sources[level] == theirs.sources[level], f"frame #{level}"
        same += 1
    assert same >= 5


# --- without the module's debug info ------------------------------------------------------


def test_full_stack_without_module_debug_info(null_deref, kdx, crash, tmp_path) -> None:  # noqa: ANN001
    """The .ko nowhere to be found: drgn alone stops after two bogus frames; kdx names
    hello_init from the module's kallsyms and steps over it with the module's ORC table,
    so the callers down to the system call entry are all there, as crash shows them."""
    (tmp_path / "vmcore").symlink_to(null_deref.vmcore)
    proc = kdx(tmp_path / "vmcore", null_deref.vmlinux, "-c", "bt")
    assert proc.returncode == 0, proc.stderr
    assert "no debug info for module(s) hello_crash" in proc.stderr
    ours = parse_bt(proc.stdout)[0]
    assert ours.exceptions[0][0] == "hello_init+17"
    theirs = parse_bt(drop_padding_frames(crash_sections(crash, null_deref)["bt"]))[0]
    assert ours.frames == theirs.frames
    after = ours.names()[ours.names().index("asm_exc_page_fault") + 1:]
    assert after == ["do_one_initcall", "do_init_module", "__do_sys_finit_module",
                     "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
    assert "scanning" not in proc.stderr  # found by ORC, not by guessing


# --- the end of the stack, JSON, damaged input --------------------------------------------


@pytest.mark.parametrize("scenario", ["sysrq", "null-deref-module"])
def test_no_frame_past_the_user_mode_boundary(scenario: str, lab) -> None:  # noqa: ANN001
    """Every task of the dump: kernel frames only, the user registers last, no runaway."""
    dump = dump_of(lab, scenario)
    traces = json.loads(run(dump, "foreach bt", json_mode=True))["data"]
    assert len(traces) > 20
    for trace in traces:
        assert all(int(f["pc"], 16) >= 1 << 63 and int(f["sp"], 16) >= 1 << 63
                   for f in trace["frames"])
        assert 0 < len(trace["frames"]) < 64
        user = [e for e in trace["exception_frames"] if e["user_mode"]]
        assert len(user) <= 1
        if user:
            assert user[0]["position"] == len(trace["frames"])
            assert int(user[0]["registers"]["CS"], 16) & 3 == 3
            assert int(user[0]["registers"]["RIP"], 16) < 1 << 63


def test_json_from_the_command_line(null_deref, kdx) -> None:  # noqa: ANN001
    proc = kdx(null_deref.vmcore, null_deref.vmlinux, "--json", "-c", "bt -a")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "bt"
    assert [t["cpu"] for t in doc["data"]] == [0, 1]
    panic = next(t for t in doc["data"] if t["panic"])
    assert panic["start"] == "kdump"
    assert [f["function"] for f in panic["frames"] if f["level"] == 0] == ["machine_kexec"]


def test_unreadable_memory_costs_only_itself(null_deref) -> None:  # noqa: ANN001
    """A range running off the end of a task's stack into its guard page (never in the
    dump) yields the readable words and no error."""
    session = session_for(null_deref)
    reader = StackReader(session.prog)
    task = session.current_task
    region = reader.task_region(task)
    words = list(reader.words(region.end - 16, region.end + 4096))
    assert [address for address, _ in words] == [region.end - 16, region.end - 8]
    assert reader.find_pt_regs(region.end - 8, 1, 2) is None


def test_bad_task_is_one_line(null_deref) -> None:  # noqa: ANN001
    session = session_for(null_deref)
    session.out, session.err = io.StringIO(), io.StringIO()
    assert not session.execute("bt 99999")
    assert session.err.getvalue() == "bt: error: invalid task or pid value: 99999\n"
    assert not session.execute("foreach nosuchcommand bt -Z")
    assert len(session.err.getvalue().splitlines()) == 2


# --- bt -F -FF -r -R -v -g -o -S -I ---------------------------------------------------------

#: The second set of options, on the null-deref dump (one cached crash run; foreach's and
#: runq's tests read other sections of the same run).
ORACLE_MORE = ("ps", "bt -F", "bt -FF", "bt -r", "bt -v", "bt -o", "bt -g 1",
               "foreach bt -R do_nanosleep", "bt -R panic", "foreach task -R pid,comm",
               "foreach 1 task", "foreach files", "foreach vm", "foreach set",
               "foreach RU bt", "foreach kernel set", "foreach user set",
               "foreach gleader set", "foreach active set", "foreach 'k.*' set",
               "foreach ID set", "foreach IN set", "foreach UN set", "foreach sh set",
               "foreach net", "runq", "runq -t", "runq -m", "runq -g", "runq -T",
               "foreach bt -F")
#: The same on the 6.12 null-deref dump.
ORACLE_MORE_612 = ("ps", "runq", "runq -t", "runq -m", "runq -g", "runq -T", "bt -F",
                   "bt -FF", "bt -r", "bt -v", "foreach UN bt",
                   "foreach bt -R schedule_timeout", "foreach RU set",
                   "foreach gleader set")


#: The sysrq dump's run (foreach's and runq's tests read it too).
ORACLE_SYSRQ = ("runq", "runq -t", "runq -m", "runq -g", "foreach RU bt",
                "foreach active set", "bt -F", "bt -v")


def _tokens(text: str) -> list[list[str]]:
    """Lines as words: crash pads -F symbols to 16 columns, and a longer name (its own
    init-text names) moves the next word; the words themselves must agree."""
    return [line.split() for line in text.splitlines()]


@pytest.mark.oracle
@pytest.mark.parametrize("command", ["bt -F", "bt -FF", "foreach bt -F"])
def test_bt_F_names_stack_words_as_crash(command: str, null_deref, crash) -> None:  # noqa: ANN001
    """Every -f word of every frame: kernel and module symbols (data symbols with a
    decimal offset), slab objects as [cache] (-FF: [address:cache]), the rest in hex."""
    theirs = normalise_crash(crash_sections(crash, null_deref, ORACLE_MORE)[command],
                             null_deref)
    ours = run(null_deref, command)
    assert _tokens(ours) == _tokens(theirs)
    assert "[kmalloc-16]" in ours if command != "bt -FF" else "kmalloc-16]" in ours
    if command == "bt -FF":
        assert re.search(r"\[ff[0-9a-f]{14}:kmalloc-16\]", ours)


@pytest.mark.oracle
def test_bt_F_on_612(null_deref_612, crash) -> None:  # noqa: ANN001
    """6.12: the same frames and words, once crash's padding frame is dropped and the
    module's init code has one neutral name on both sides (crash counts its offsets from
    the function's padding, so they differ by that padding)."""
    theirs = drop_padding_frames(crash_sections(crash, null_deref_612, ORACLE_MORE_612)["bt -FF"])
    ours = run(null_deref_612, "bt -FF")
    theirs = re.sub(r"_MODULE_INIT_TEXT_START_hello_crash(?:\+\d+)?", "<init>", theirs)
    ours = re.sub(r"hello_init(?:\+\d+)?", "<init>", ours)
    assert _tokens(ours) == _tokens(theirs)
    assert "[exception RIP: <init>]" in ours
    assert [t.names() for t in parse_bt(ours)] == [t.names() for t in parse_bt(theirs)]


def _raw_pairs(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for line in text.splitlines()[1:]:
        address, _, words = line.partition(":")
        out.append((address.strip(), words.split()))
    return out


@pytest.mark.oracle
@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_bt_r_dumps_the_stack_as_crash(kernel: str, null_deref, null_deref_612, crash) -> None:  # noqa: ANN001, E501
    """The whole 16 KiB stack, two words a line from the stack's base, each the same hex
    value or symbol as crash's, string literals (``.LC4+926``) included; only module init
    text, which crash 8.0.6 cannot name, is named differently."""
    dump, oracle = (null_deref, ORACLE_MORE) if kernel == "6.1" else \
        (null_deref_612, ORACLE_MORE_612)
    theirs = crash_sections(crash, dump, oracle)["bt -r"]
    ours = run(dump, "bt -r")
    assert ours.splitlines()[0] == theirs.splitlines()[0]
    mine, their = _raw_pairs(ours), _raw_pairs(theirs)
    assert len(mine) == len(their) == 16384 // 16
    assert [a for a, _ in mine] == [a for a, _ in their]
    assert their[0][1][0] == "0000000057ac6e9d"  # STACK_END_MAGIC at the base
    prog = dump.target.prog
    for (address, words), (_, expected) in zip(mine, their):
        assert len(words) == len(expected), address
        for i, (word, want) in enumerate(zip(words, expected)):
            if _INIT_TEXT.match(want):
                # kdx's own name for the word must still say exactly what the word holds
                value = prog.read_u64(int(address, 16) + 8 * i)
                assert _symbol_value(prog, word) == value, (address, word, want)
            else:
                assert word == want, (address, word, want)


def _symbol_value(prog, word: str) -> int | None:  # noqa: ANN001 (drgn.Program)
    """The address ``name+offset`` (decimal offset, as bt -r prints) stands for."""
    name, _, offset = word.partition("+")
    try:
        return prog.symbol(name).address + int(offset or "0")
    except (LookupError, ValueError):
        return None


@pytest.mark.oracle
def test_bt_v_g_R_match_crash(null_deref, crash) -> None:  # noqa: ANN001
    """-v's all-clear, -g's thread group (init: one thread), -R's selection: the tasks
    whose trace has a do_nanosleep frame, each followed by a blank line, and none when
    the panic task's trace has no panic frame."""
    sections = crash_sections(crash, null_deref, ORACLE_MORE)
    for command in ("bt -v", "bt -g 1", "foreach bt -R do_nanosleep", "bt -R panic"):
        assert run(null_deref, command).splitlines() == sections[command].splitlines(), \
            command
    referencing = {t.pid for t in parse_bt(sections["foreach bt -R do_nanosleep"])}
    every = parse_bt(crash_sections(crash, null_deref)["foreach bt"])
    assert referencing == {t.pid for t in every if "do_nanosleep" in t.names()}
    assert len(referencing) >= 3


def test_bt_R_by_address(null_deref) -> None:  # noqa: ANN001
    """A hexadecimal -R matches a frame's text address or an exception register."""
    trace = parse_bt(run(null_deref, "bt"))[0]
    pc = trace.frames[3][3]
    assert parse_bt(run(null_deref, f"bt -R {pc}"))[0].pid == trace.pid
    rip = trace.exceptions[0][1]["RIP"]
    assert parse_bt(run(null_deref, f"bt -R {rip}"))[0].pid == trace.pid
    assert run(null_deref, "bt -R ffffffffffff0000") == ""


@pytest.mark.oracle
def test_bt_o_is_crash_bt_o_without_its_stale_frames(null_deref, crash) -> None:  # noqa: ANN001
    """crash's ``bt -o`` (its old unwinder) lists every return address left on the stack;
    kdx's one unwinder shows the frames that are really there (docs/crash-differences.md).
    So kdx's ``bt -o`` must be crash's own ``bt -o`` with only stale frames left out:
    its frames a subsequence of crash's (same slot, address, name and module), the
    exception frames register for register, and the stale ones the documented kind."""
    theirs = parse_bt(normalise_crash(crash_sections(crash, null_deref, ORACLE_MORE)["bt -o"],
                                      null_deref))[0]
    ours = parse_bt(run(null_deref, "bt -o"))[0]
    assert (ours.pid, ours.task, ours.cpu, ours.comm) == (theirs.pid, theirs.task, theirs.cpu,
                                                          theirs.comm)
    crash_frames = [f[1:] for f in theirs.frames]
    at = 0
    for frame in (f[1:] for f in ours.frames):
        assert frame in crash_frames[at:], frame
        at = crash_frames.index(frame, at) + 1
    stale = [f for f in crash_frames if f not in [g[1:] for g in ours.frames]]
    assert "exit_to_user_mode_prepare" in [name for _, name, _, _ in stale]
    assert len(stale) == len(theirs.frames) - len(ours.frames)
    assert ours.exceptions == theirs.exceptions


@pytest.mark.parametrize("level", [3, 7, 9])
def test_bt_S_starts_at_a_frame_slot(level: int, null_deref) -> None:  # noqa: ANN001
    """-S at frame #N's slot gives frames N... of the full trace, renumbered from 0;
    -I with the frame's address and the slot above it starts there too."""
    full = parse_bt(run(null_deref, "bt"))[0]
    slot, pc = full.frames[level][1], full.frames[level][3]
    started = parse_bt(run(null_deref, f"bt -S {slot}"))[0]
    assert [f[1:] for f in started.frames] == [f[1:] for f in full.frames[level:]]
    assert [f[0] for f in started.frames] == list(range(len(started.frames)))
    with_ip = parse_bt(run(null_deref, f"bt -S {int(slot, 16) + 8:x} -I {pc}"))[0]
    assert with_ip.names()[0] == full.names()[level]
    assert with_ip.names()[1:] == full.names()[level + 1:]


def test_bt_S_outside_the_stack_is_one_line(null_deref) -> None:  # noqa: ANN001
    session = session_for(null_deref)
    session.out, session.err = io.StringIO(), io.StringIO()
    assert not session.execute("bt -S ffffffff00000000")
    assert session.err.getvalue().startswith(
        "bt: error: non-process stack address for this task: ffffffff00000000")


def test_bt_v_finds_a_broken_magic(null_deref) -> None:  # noqa: ANN001
    """The check reads the word at each stack's base: a task whose base reads as
    anything else is reported, the task's header above crash's message."""
    from kdx.model.stack import STACK_END_MAGIC, StackOverflow, check_stack_overflows
    from kdx.render.crash.bt import render_overflows

    session = session_for(null_deref)
    reader = StackReader(session.prog)
    task = session.current_task
    assert reader.read_word(task.stack.value_()) == STACK_END_MAGIC
    assert check_stack_overflows(reader, [task]) == []
    broken = StackOverflow(1, 0xFF00, 0, "init", 0xFFAA0000, 0x1234)
    assert render_overflows([broken]).splitlines() == [
        'PID: 1        TASK: ff00              CPU: 0    COMMAND: "init"',
        "  possible stack overflow: ffaa0000: 1234 != STACK_END_MAGIC"]


@pytest.mark.oracle
def test_bt_F_and_v_on_sysrq(sysrq, crash) -> None:  # noqa: ANN001
    """The SysRq panic: the same -F words, a pointer into a string literal included
    (named by its assembler label, ``.LC3+673``, as crash names it)."""
    sections = crash_sections(crash, sysrq, ORACLE_SYSRQ)
    assert run(sysrq, "bt -v") == sections["bt -v"].rstrip("\n") == \
        "No stack overflows detected"
    theirs, ours = _tokens(sections["bt -F"]), _tokens(run(sysrq, "bt -F"))
    assert len(ours) == len(theirs) > 50
    labels = 0
    for mine, their in zip(ours, theirs):
        assert len(mine) == len(their)
        assert mine == their
        labels += sum(1 for word in their if word.startswith(".LC"))
    assert labels >= 1


# --- bt -n idle, -A, -D, -O ---------------------------------------------------------------

#: crash's run for these options (its own list, so its cached output stays valid).
BT_CRASH_ONLY = ("bt -a -n idle", "bt -n idle 0", "bt -n idle", "bt -n busy", "bt -A",
                 "bt -D dump", "bt -O", "bt -O")


@pytest.mark.oracle
def test_bt_n_idle_A_D_O(null_deref_each, crash) -> None:  # noqa: ANN001
    from crash_script import kdx_sections

    commands = list(BT_CRASH_ONLY)
    theirs = script_sections(crash, null_deref_each, commands)
    run = kdx_sections(session_for(null_deref_each).target, [*commands, "bt -a", "bt 0", "bt"])
    ours = run.sections
    for command, option in (("bt -n busy", "n"), ("bt -A", "A")):
        message = f"-{option} option not supported or applicable on this architecture or kernel"
        assert theirs[command] == f"bt: {message}"
        assert command in run.failed and message in run.stderr
    assert theirs["bt -D dump"].startswith("framesize_cache_entries:")
    assert "bt -D dump" in run.failed and "frame-size cache" in run.stderr
    assert theirs["bt -O"].startswith("bt: use ")
    assert ours["bt -O"] == "" and "one unwinder" in run.stderr
    # -n idle: the same tasks under the same headers; an idle task the crash NMI stopped
    # is its header alone in kdx (crash 8.0.6 finds no such task on 6.x kernels and
    # prints its whole stack: docs/crash-differences.md)
    for skipped, full, crash_text in (("bt -a -n idle", "bt -a", theirs["bt -a -n idle"]),
                                      ("bt -n idle 0", "bt 0", theirs["bt -n idle 0"]),
                                      ("bt -n idle", "bt", theirs["bt -n idle"])):
        ours_blocks = ours[skipped].split("\n\n")
        full_blocks = ours[full].split("\n\n")
        crash_blocks = crash_text.split("\n\n")
        assert [b.split("\n")[0] for b in ours_blocks] == \
            [b.split("\n")[0] for b in crash_blocks], skipped
        for mine, whole, theirs_block in zip(ours_blocks, full_blocks, crash_blocks):
            stopped = mine.startswith("PID: 0 ") and "crash_nmi_callback" in theirs_block
            assert mine == (whole.split("\n")[0] if stopped else whole), skipped
    # crash prints an idle task the crash NMI stopped with its whole stack; there is one
    # such block for each CPU that was idle (none when the busy loop and the panicking
    # task hold both CPUs, as on 6.1 and 6.12.117; CPU 0 on 6.12.57)
    idle_active = [b for b in theirs["bt -a -n idle"].split("\n\n") if b.startswith("PID: 0 ")]
    idle_cpus = [line for line in ours["bt -a"].splitlines() if line.startswith("PID: 0 ")]
    assert len(idle_active) == len(idle_cpus)
    assert all("crash_nmi_callback" in block for block in idle_active)
    if null_deref_each.truth["release"].startswith("6.1."):
        assert ours["bt -n idle 0"] == theirs["bt -n idle 0"]
