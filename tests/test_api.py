"""The public Python API on real lab dumps: what it returns must be what really happened
(the lab's truth.json) and what the crash commands themselves record.

The API is a thin door onto the model, so its answers are checked twice: against the
ground truth of the crash the lab caused, and against the record the same command emits
in a session (the one ``--json`` writes), so the two never drift apart.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kdx
from kdx.api import CommandResult, Stack, StackFrame
from kdx.session.session import Session

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def json_data(dump, command: str) -> object:  # noqa: ANN001 (LabDump)
    """The ``data`` of ``command --json`` in a fresh session on the same target."""
    out = io.StringIO()
    session = Session(dump.target, json=True, out=out, err=io.StringIO())
    assert session.execute(command), command
    return json.loads(out.getvalue())["data"]


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def null_deref_dump(request, lab):  # noqa: ANN001, ANN201 (fixtures)
    return lab("null-deref-module", kernel=None if request.param == "6.1" else "6.12")


def test_open_dump_reads_the_panic_as_it_happened(null_deref_dump) -> None:  # noqa: ANN001
    truth = null_deref_dump.truth
    dump = null_deref_dump.opened
    assert isinstance(dump, kdx.Dump)
    info = dump.sys()
    assert (info.pid, info.command, info.release) == (truth["pid"], truth["comm"],
                                                      truth["release"])
    assert info.cpu == truth["cpu"]
    assert truth["panic_message"] in "\n".join(
        line for r in dump.log().records for line in r.lines)


def test_backtrace_defaults_to_the_panic_task(null_deref_dump) -> None:  # noqa: ANN001
    truth = null_deref_dump.truth
    stack = null_deref_dump.opened.backtrace()
    assert isinstance(stack, Stack)
    assert (stack.pid, stack.comm, stack.cpu, stack.panic) == (
        truth["pid"], truth["comm"], truth["cpu"], True)
    culprit = next(f for f in stack.frames if f.function == truth["function"])
    assert isinstance(culprit, StackFrame)
    assert culprit.module == truth["module"]
    assert culprit.file is not None and culprit.file.endswith(truth["source_file"])
    assert culprit.line == truth["source_line"]
    assert culprit.offset is not None and culprit.offset > 0
    # a frame's address lies inside its function: address - offset is the symbol's start
    symbol = null_deref_dump.opened.prog.symbol(culprit.address)
    assert symbol.address == culprit.address - culprit.offset
    # the kernel's own frames name no module
    assert all(f.module is None for f in stack.frames if f.function == "do_one_initcall")


def test_backtrace_is_bt_record(null_deref_dump) -> None:  # noqa: ANN001
    dump = null_deref_dump.opened
    pid = null_deref_dump.truth["pid"]
    stack = dump.backtrace(pid)
    result = dump.run(f"bt {pid}")
    assert result.ok and result.kind == "bt"
    assert result.record == [stack.record]
    assert [f.address for f in stack.frames] == [f.pc for f in stack.record.frames]
    assert stack.to_dict() == json_data(null_deref_dump, f"bt {pid}")[0]
    assert f"COMMAND: \"{stack.comm}\"" in result.text


def test_backtrace_of_a_sleeping_task(null_deref_dump) -> None:  # noqa: ANN001
    """PID 1 sleeps: its stack ends in the scheduler, as ``bt 1`` shows it."""
    dump = null_deref_dump.opened
    stack = dump.backtrace(1)
    assert (stack.pid, stack.panic) == (1, False)
    assert stack.comm == dump.task(1).comm
    assert "__schedule" in stack.functions
    assert dump.run("bt 1").record == [stack.record]


def test_tasks_are_ps_records(null_deref_dump) -> None:  # noqa: ANN001
    truth = null_deref_dump.truth
    dump = null_deref_dump.opened
    tasks = dump.tasks()
    result = dump.run("ps")
    assert result.ok and result.kind == "ps"
    assert result.record == tasks
    panicking = dump.task(truth["pid"])
    assert (panicking.comm, panicking.cpu, panicking.active) == (truth["comm"], truth["cpu"],
                                                                 True)
    assert dump.task(0).comm == "swapper/0"
    assert kdx.to_dict(panicking) in json_data(null_deref_dump, "ps")
    with pytest.raises(LookupError):
        dump.task(max(t.pid for t in tasks) + 1)


def test_modules_are_mod_records(null_deref_dump) -> None:  # noqa: ANN001
    truth = null_deref_dump.truth
    dump = null_deref_dump.opened
    modules = dump.modules()
    culprit = next(m for m in modules if m.name == truth["module"])
    assert culprit.state == "coming"  # it crashed in its init function
    result = dump.run("mod")
    assert result.record == modules
    assert result.to_dict() == json_data(null_deref_dump, "mod")


def test_analyze_names_the_culprit(null_deref_dump) -> None:  # noqa: ANN001
    truth = null_deref_dump.truth
    verdict = null_deref_dump.opened.analyze()
    assert verdict.category == truth["category"]
    assert (verdict.culprit.function, verdict.culprit.module, verdict.culprit.line) == (
        truth["function"], truth["module"], truth["source_line"])
    assert (verdict.context.pid, verdict.context.comm) == (truth["pid"], truth["comm"])
    as_dict = verdict.to_dict()
    assert as_dict["culprit"]["module"] == truth["module"]
    assert json.loads(json.dumps(as_dict)) == as_dict  # plain JSON values only


def test_analyze_to_dict_is_the_cli_json(null_deref, kdx) -> None:  # noqa: ANN001
    """``Verdict.to_dict()`` is, key for key, what ``kdx analyze --json`` writes."""
    verdict = null_deref.opened.analyze()
    proc = kdx("analyze", "--json", null_deref.vmcore, null_deref.vmlinux,
               null_deref.modules, check=True)
    assert json.loads(proc.stdout)["data"] == verdict.to_dict()


def test_run_returns_text_record_and_errors(null_deref) -> None:  # noqa: ANN001
    dump = null_deref.opened
    sys_result = dump.run("sys")
    assert isinstance(sys_result, CommandResult)
    assert sys_result.ok and sys_result.error == "" and sys_result.kind == "sys"
    assert sys_result.record == dump.sys()
    assert re.search(rf"^\s+PID: {null_deref.truth['pid']}$", sys_result.text, re.M)
    bad = dump.run("bt 999999")
    assert not bad.ok and bad.error.startswith("bt: error:") and bad.record is None
    unknown = dump.run("nosuchcommand")
    assert not unknown.ok and "no such command" in unknown.error
    assert unknown.kind is None and unknown.text == ""
    piped = dump.run("ps | grep insmod")  # the shell still sees the text
    assert piped.ok and piped.kind == "ps" and "insmod" in piped.text


def test_sysrq_panic_task(sysrq) -> None:  # noqa: ANN001
    """A panic with no oops: the task that wrote to sysrq-trigger is the default stack."""
    truth = sysrq.truth
    dump = sysrq.opened
    stack = dump.backtrace()
    assert (stack.pid, stack.comm) == (truth["pid"], truth["comm"])
    assert "sysrq_handle_crash" in stack.functions
    assert dump.analyze().category == truth["category"]


def test_import_kdx_is_cheap() -> None:
    """``import kdx`` loads neither drgn nor any command: scripts that only want a
    version or one submodule do not pay for a dump reader."""
    code = ("import sys, kdx; print(sorted(m for m in sys.modules if m.startswith('kdx') "
            "or m == 'drgn'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['kdx']"


def test_public_names_are_documented() -> None:
    """Every exported name has a docstring, and each of Dump's methods shows an example."""
    for name in kdx.__all__:
        value = getattr(kdx, name)
        if name != "__version__":
            assert getattr(value, "__doc__", None), name
    for method in ("sys", "tasks", "task", "backtrace", "log", "modules", "analyze", "run"):
        assert ">>>" in getattr(kdx.Dump, method).__doc__, method
    assert ">>>" in kdx.open_dump.__doc__
    assert (Path(kdx.__file__).parent / "py.typed").is_file()


def _triage_script() -> str:
    """The script under ``docs/api.md``'s triage heading, as a reader would copy it."""
    text = DOCS.read_text()
    section = text[text.index("## Triage a directory of dumps"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_docs_triage_script_runs(lab, tmp_path) -> None:  # noqa: ANN001
    """The documented triage script, run on a directory holding two lab dumps (without
    their vmlinux: found through the lab's debug directory), prints one true line each."""
    dumps = {"null-deref": lab("null-deref-module"), "sysrq": lab("sysrq")}
    for name, dump in dumps.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "vmcore").symlink_to(dump.vmcore)
    script = tmp_path / "triage.py"
    script.write_text(_triage_script())
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [Path(r[0]).parent.name for r in rows] == ["null-deref", "sysrq"]
    for row, dump in zip(rows, dumps.values()):
        truth = dump.truth
        assert row[1:4] == [truth["category"], str(truth["pid"]), truth["comm"]]
    assert rows[0][4] == f"{dumps['null-deref'].truth['function']} "\
                         f"[{dumps['null-deref'].truth['module']}]"
