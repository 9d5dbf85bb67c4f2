"""The crash shell's own words: ``alias``, ``*``, ``set`` variables, ``wr``, ``repeat``.

Compared with crash on a lab dump where crash answers (the alias listing, ``*`` and
``size``, the radix that ``hex``/``dec`` set for ``p`` and ``struct``).
"""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
from crash_script import crash_parts, kdx_sections

from kdx.session.session import Session


@pytest.fixture(scope="module")
def target(null_deref):
    return null_deref.target


def _session(target, json_mode: bool = False) -> tuple[Session, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Session(target, json=json_mode, out=out, err=err), out, err


def test_shell_words_match_crash(crash, null_deref_each):
    null_deref, target = null_deref_each, null_deref_each.target
    tasks = f"{target.prog['init_task'].tasks.address_:x}"
    wanted = ["alias", "alias pd", f"* list_head {tasks}",
              "size list_head", f"* task_struct.pid,comm {target.prog['init_task'].address_:x}",
              "hex", "p jiffies", f"struct list_head {tasks}", "px jiffies", "dec",
              "p jiffies", "pd jiffies", "set radix 16", "p init_task.pid", "set radix 10"]
    theirs = crash_parts(crash, null_deref, wanted)
    run = kdx_sections(target, wanted)
    assert not run.failed, run.stderr
    for command, mine, crash_says in zip(wanted, run.parts, theirs):
        assert mine == crash_says, command
    assert "builtin  size     *" in run.sections["alias"]
    assert "0x" in run.sections["px jiffies"]


def test_user_aliases(target):
    session, out, err = _session(target)
    assert session.execute("alias tasks 'ps -G'")
    assert out.getvalue().splitlines()[1].split() == ["runtime", "tasks", "ps", "-G"]
    assert session.execute("tasks | grep -c '^>'")
    assert int(out.getvalue().splitlines()[-1]) >= 1
    assert session.execute('alias tasks ""')
    assert out.getvalue().endswith("alias deleted: tasks\n")
    assert not session.execute("tasks")
    assert not session.execute("alias sys log")
    assert not session.execute("alias zz nosuchcommand")
    assert not session.execute("alias zz")
    errors = err.getvalue().splitlines()
    assert [e.split(": error: ")[1] for e in errors[1:]] == [
        "cannot alias existing command name: sys",
        "invalid alias attempt on non-existent command: nosuchcommand",
        "alias does not exist: zz"]
    session, out, _ = _session(target, json_mode=True)
    assert session.execute("alias hex")
    doc = json.loads(out.getvalue())
    assert doc["kind"] == "alias"
    assert doc["data"] == [{"origin": "builtin", "alias": "hex",
                            "command": ["set", "radix", "16"]}]


def test_set_variables(target):
    session, out, err = _session(target)
    assert session.execute("set -v")
    rows = dict(line.strip().split(": ", 1) for line in out.getvalue().splitlines())
    assert rows["radix"] == "10 (decimal)" and rows["silent"] == "off"
    assert rows["dumpfile"].endswith("vmcore")
    assert session.execute("sn") and session.execute("set silent on")
    assert not session.execute("set radix 8") and not session.execute("set scroll maybe")
    assert len(err.getvalue().splitlines()) == 2
    session, out, _ = _session(target, json_mode=True)
    assert session.execute("hex")
    doc = json.loads(out.getvalue())
    assert doc["kind"] == "set-variables"
    assert doc["data"] == [{"name": "radix", "value": "16 (hexadecimal)"}]
    out.seek(0)
    out.truncate()
    assert session.execute("set -v")
    assert len(json.loads(out.getvalue())["data"]) == 5


def test_wr_and_repeat(target):
    session, out, err = _session(target)
    assert not session.execute("wr jiffies 0")
    assert err.getvalue().count("\n") == 1 and "never writes" in err.getvalue()
    assert session.execute("repeat -2 p jiffies")
    assert out.getvalue().startswith("jiffies = $1 = ") and out.getvalue().count("\n") == 1
    assert "runs once" in err.getvalue()
    assert not session.execute("repeat -x p jiffies")
    assert not session.execute("repeat nosuch")
    assert not session.execute("* nosuchtype")


def _rc_dirs(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / ".crashrc").write_text("alias kp 'p -x'\nset scroll on\n# a comment\n")
    (home / ".kdxrc").write_text("hex\nalias sy sys\n")
    (work / ".kdxrc").write_text("alias kp p -d\n")
    return home, work


def test_rc_files(target, tmp_path):
    from kdx.session.rcfiles import run_rc_files

    home, work = _rc_dirs(tmp_path)
    session, out, err = _session(target)
    assert run_rc_files(session, home, work)
    assert out.getvalue().splitlines()[0] == "output radix: 16 (hex)"
    assert not session.settings.scroll  # .crashrc gives its aliases only
    out.seek(0)
    out.truncate()
    assert session.execute("alias")
    rows = [row.rstrip() for row in out.getvalue().splitlines()]
    assert rows[0] == "ORIGIN        ALIAS    COMMAND"  # as wide as "$HOME/.kdxrc"
    assert rows[-2:] == ["$HOME/.kdxrc  sy       sys", ".kdxrc        kp       p -d"]
    assert err.getvalue() == ""


def test_rc_files_from_the_command_line(null_deref, tmp_path):
    import os
    import subprocess
    import sys

    home, work = _rc_dirs(tmp_path)
    env = dict(os.environ, HOME=str(home))
    for extra, expected in (([], "0x"), (["--no-rc"], "")):
        proc = subprocess.run([sys.executable, "-m", "kdx", str(null_deref.vmcore), *extra,
                               "-c", "p jiffies", "-c", "kp jiffies"], cwd=work, env=env,
                              capture_output=True, text=True, timeout=300)
        lines = proc.stdout.splitlines()
        if extra:
            assert proc.returncode == 1 and "kp: no such command" in proc.stderr
            assert lines[0].startswith("jiffies = $1 = ") and "0x" not in lines[0]
        else:
            assert proc.returncode == 0, proc.stderr
            assert lines[1].startswith("jiffies = $1 = 0x")  # hex, from ~/.kdxrc
            assert lines[2].startswith("jiffies = $2 = ") and expected not in lines[2]


def test_gdb_commands_match_crash(crash, null_deref_each):
    null_deref, target = null_deref_each, null_deref_each.target
    wanted = ["gdb p jiffies", "p jiffies", "gdb p/x jiffies", "gdb ptype struct list_head",
              "gdb whatis jiffies", "gdb whatis init_task", "gdb ptype init_task.pid",
              "gdb info symbol 0xffffffff81000000", "gdb info address jiffies",
              "gdb info address schedule", "gdb info symbol schedule",
              "gdb list schedule", "gdb x/2xg &jiffies", "gdb p init_task.comm",
              "g whatis pid_t", "gdb ptype pid_t"]
    theirs = crash_parts(crash, null_deref, wanted)
    run = kdx_sections(target, wanted)
    assert not run.failed, run.stderr
    for command, mine, crash_says in zip(wanted, run.parts, theirs):
        assert mine == crash_says, command
    line = kdx_sections(target, ["gdb info line schedule"]).parts[0]
    crash_line = crash_parts(crash, null_deref, ["gdb info line schedule"])[0]
    assert line.startswith('Line ') and ' of "kernel/sched/core.c" starts at ' in line
    # the start agrees; the end is where drgn's source position changes (see the docs)
    assert line.split(" and ends at ")[0] == crash_line.split(" and ends at ")[0]


def test_gdb_commands_kdx_does_not_answer(target):
    session, out, err = _session(target)
    assert not session.execute("gdb info registers")
    assert not session.execute("gdb frobnicate")
    assert not session.execute("gdb p no_such_symbol_here")
    errors = err.getvalue().splitlines()
    assert len(errors) == 3 and "use bt -e" in errors[0] and "not answered" in errors[1]
    assert out.getvalue() == ""


def test_py_scripts(target, tmp_path):
    script = tmp_path / "tasks.py"
    script.write_text("import sys\n"
                      "print(sys.argv[1:], prog['init_task'].comm.string_().decode())\n"
                      "print(find_task(prog, 1).comm.string_().decode(), "
                      "dump.sys().nodename)\n"
                      "if sys.argv[1:] == ['fail']: raise ValueError('bad')\n")
    session, out, err = _session(target)
    assert session.execute(f"py {script} -x 7"), err.getvalue()
    assert out.getvalue() == "['-x', '7'] swapper/0\ninit kdx-lab\n"
    assert session.execute("python -c 'print(len(list(for_each_task(prog))))' | cat")
    assert int(out.getvalue().splitlines()[-1]) > 50
    assert not session.execute(f"py {script} fail")
    assert not session.execute("py nosuch.py")
    errors = err.getvalue().splitlines()
    assert errors == [f"py: error: {script} (line 4): ValueError: bad",
                      "py: error: no such file: nosuch.py"]


EXAMPLE = __import__("pathlib").Path(__file__).parent.parent / "examples" / "kdx_runnable.py"


def _running(target, cpu: int) -> list[str]:
    """The CPU, PID and command of the task the dump shows running on ``cpu``, read with
    drgn's own helper (PIDs change each time the lab builds the dump)."""
    from drgn.helpers.linux.sched import cpu_curr

    task = cpu_curr(target.prog, cpu)
    return [str(cpu), str(task.pid.value_()), task.comm.string_().decode()]


def _runnable(target, cpu: int | None = None) -> list[list[str]]:
    """The example extension's rows as drgn reads them: every task in state R (the one
    running on its CPU, and any queued behind it, which varies from build to build),
    by CPU and PID."""
    from drgn.helpers.linux.pid import for_each_task
    from drgn.helpers.linux.sched import task_cpu, task_state_to_char

    rows = sorted((task_cpu(t), t.pid.value_(), t.comm.string_().decode())
                  for t in for_each_task(target.prog) if task_state_to_char(t) == "R")
    return [[str(c), str(p), comm] for c, p, comm in rows if cpu in (None, c)]


def test_extend_loads_lists_and_unloads(target, tmp_path):
    session, out, err = _session(target)
    assert session.execute(f"extend {EXAMPLE}")
    assert session.execute("runnable")
    rows = out.getvalue().splitlines()
    assert rows[0].endswith("kdx_runnable.py: commands: runnable")
    spinner, panicking = _running(target, 0), _running(target, 1)
    assert spinner[2] == "spinner" and panicking[2] == "insmod"
    assert rows[1] == "CPU    PID  COMMAND"
    listed = [row.split() for row in rows[2:]]
    assert listed == _runnable(target)
    assert spinner in listed and panicking in listed  # the panic task, running insmod
    assert not session.execute(f"extend {EXAMPLE}")  # already loaded
    assert not session.execute("runnable -c 7")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no')\n")
    assert not session.execute(f"extend {broken}")
    clash = tmp_path / "clash.py"
    clash.write_text("from kdx.extension import command, make_parser\n"
                     "@command('ps', 'mine', parser=lambda: make_parser('ps', ''))\n"
                     "def ps(session, args): pass\n")
    assert not session.execute(f"extend {clash}")
    assert session.execute(f"extend -u {EXAMPLE}")
    assert not session.execute("runnable")
    assert [e.split(": ", 2)[-1] for e in err.getvalue().splitlines()] == [
        f"{EXAMPLE}: already loaded", "no runnable task on CPU 7",
        f"{broken}: RuntimeError: no", "ps: a kdx command has that name",
        "runnable: no such command (try 'help')"]
    session, out, _ = _session(target, json_mode=True)
    assert session.execute(f"extend {EXAMPLE}") and session.execute("runnable -c 1")
    docs = [json.loads(d) for d in out.getvalue().replace("}\n{", "}\n\x00{").split("\x00")]
    assert docs[1] == {"kind": "runnable", "schema": 2,
                       "data": [{"cpu": 1, "pid": int(pid), "comm": comm}
                                for _cpu, pid, comm in _runnable(target, 1)]}
    assert {"cpu": 1, "pid": int(panicking[1]), "comm": "insmod"} in docs[1]["data"]


def test_installed_extensions_by_entry_point(target, tmp_path, monkeypatch):
    """A package advertising a module under the kdx.extensions entry-point group."""
    (tmp_path / "kdx_demo_ext.py").write_text(EXAMPLE.read_text())
    info = tmp_path / "kdx_demo_ext-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kdx-demo-ext\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("[kdx.extensions]\ndemo = kdx_demo_ext\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    session, out, err = _session(target)
    assert session.execute("runnable -c 0")  # found on first use, nothing typed
    assert [row.split() for row in out.getvalue().splitlines()[1:]] == _runnable(target, 0)
    assert _running(target, 0) in _runnable(target, 0)
    assert session.execute("extend -s")
    assert out.getvalue().splitlines()[-1].split() == ["demo", "runnable"]
    assert err.getvalue() == ""


def test_tab_completion_candidates(target, tmp_path):
    from drgn.helpers.linux.pid import for_each_task

    from kdx.session.completion import Completer

    completer = Completer(Session(target, out=io.StringIO(), err=io.StringIO()))
    pids = sorted(str(t.pid.value_()) for t in for_each_task(target.prog))
    # the two digits most PIDs of three digits or more start with (PIDs change with
    # each lab build)
    prefix = Counter(p[:2] for p in pids if len(p) >= 3).most_common(1)[0][0]
    assert len([p for p in pids if p.startswith(prefix)]) >= 2
    (tmp_path / "dmesg-out.txt").write_text("")
    cases = {("", "forea"): ["foreach "], ("", "h"): ["help ", "hex "],
             ("p ", "jiffies_6"): ["jiffies_64", "jiffies_64_to_clock_t"],
             ("whatis ", "task_stru"): ["task_struct", "task_struct_cachep"],
             ("", "task_struct.tgi"): ["task_struct.tgid"],
             ("struct ", "task_struct.se.vrun"): ["task_struct.se.vruntime"],
             ("bt ", prefix): [p for p in pids if p.startswith(prefix)],
             ("log > ", f"{tmp_path}/dmesg-"): [f"{tmp_path}/dmesg-out.txt"]}
    for (before, text), expected in cases.items():
        assert completer.candidates(before, text) == expected, (before, text)
    assert {"-a", "-f", "-l"} <= set(completer.candidates("bt ", "-"))


def test_gdb_bt_and_disassemble_in_gdbs_layout(crash, null_deref_each):
    null_deref, target = null_deref_each, null_deref_each.target
    wanted = ["gdb bt", "gdb bt full 2", "gdb disassemble schedule",
              "gdb disassemble /r schedule,+8"]
    theirs = dict(zip(wanted, crash_parts(crash, null_deref, wanted)))
    run = kdx_sections(target, wanted)
    assert not run.failed, run.stderr
    mine = dict(zip(wanted, run.parts))
    bt = mine["gdb bt"].splitlines()
    # crash's gdb cannot name module code ("#0  0x... in ?? ()"); kdx names it, with its line
    assert bt[0].startswith("#0  0x") and " in hello_init () at " in bt[0]
    assert bt[0].endswith(f"hello-crash.c:{null_deref.truth['source_line']}")
    crash_bt = theirs["gdb bt"].splitlines()
    assert crash_bt[0].endswith(" in ?? ()")
    assert bt[2] == crash_bt[2]  # do_init_module (mod=0x... <__this_module>) at file:line
    # gdb adds load_module, a frame it infers from a tail call (not on the stack)
    assert bt[-1][3:] == crash_bt[-1][3:]  # entry_SYSCALL_64 (); user frames are not shown
    assert "in entry_SYSCALL_64 () at " in bt[-1]
    full = mine["gdb bt full 2"].splitlines()
    crash_full = theirs["gdb bt full 2"].splitlines()
    assert full[-4:] == crash_full[-4:]  # frame #1's locals, then "(More stack frames...)"
    assert full[-1] == "(More stack frames follow...)"
    assert mine["gdb disassemble schedule"] == theirs["gdb disassemble schedule"]
    assert mine["gdb disassemble /r schedule,+8"] == theirs["gdb disassemble /r schedule,+8"]
