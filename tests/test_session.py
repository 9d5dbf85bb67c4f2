"""The crash-style session: command lines, pipes, redirection, scripts and errors."""

from __future__ import annotations

import io
import json

import pytest

from kdx.session.session import Session


@pytest.fixture(scope="module")
def target(null_deref):
    return null_deref.target


def _session(target, json_mode: bool = False) -> tuple[Session, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Session(target, json=json_mode, out=out, err=err), out, err


def test_pipe_to_shell_command(target):
    session, out, err = _session(target)
    assert session.execute("sys | grep -c RELEASE")
    assert out.getvalue().strip() == "1"
    assert err.getvalue() == ""


def test_redirect_and_append(target, tmp_path):
    session, out, _ = _session(target)
    dest = tmp_path / "sys.txt"
    assert session.execute(f"sys > {dest}")
    assert session.execute(f"sys >> {dest}")
    assert out.getvalue() == ""
    assert dest.read_text().count("NODENAME: kdx-lab") == 2


def test_errors_are_one_line_and_the_session_goes_on(target):
    session, out, err = _session(target)
    assert not session.execute("nosuchcommand")
    assert not session.execute("sys --bogus")
    assert not session.execute("sys 'unterminated")
    assert session.execute("sys")
    lines = err.getvalue().splitlines()
    assert len(lines) == 3 and all("error" in line for line in lines)
    assert "RELEASE: 6.1" in out.getvalue()


def test_json_mode(target):
    session, out, _ = _session(target, json_mode=True)
    assert session.execute("sys")
    doc = json.loads(out.getvalue())
    assert doc["kind"] == "sys" and doc["schema"] == 2
    assert doc["data"]["nodename"] == "kdx-lab"


def test_control_sequences_never_reach_the_terminal(target):
    session, out, _ = _session(target)
    session.write("comm \x1b[2J\x1b]0;owned\x07name\x9b31m\n")
    assert out.getvalue() == "comm name\n"


def test_command_line_script_and_stdin(kdx, null_deref, tmp_path):
    script = tmp_path / "cmds"
    script.write_text("sys | grep NODENAME\n# a comment\nhelp | grep -c '^sys '\n")
    proc = kdx(null_deref.vmcore, "-i", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["NODENAME:", "kdx-lab", "1"]
    proc = kdx(null_deref.vmcore, "-c", "nosuch", "-c", "sys | grep -c 'PANIC:'")
    assert proc.returncode == 1
    assert proc.stdout.strip() == "1"
    assert "Traceback" not in proc.stderr


def test_command_index_lists_every_command():
    from kdx.commands.crash import INDEX
    from kdx.session.command import scan_commands

    assert scan_commands() == INDEX


def test_crash_shortcuts_for_data_commands(target):
    session, out, err = _session(target)
    task = f"{target.prog['init_task'].address_:x}"
    assert session.execute(f"task_struct.pid,comm {task}")  # = struct task_struct.pid,comm
    assert out.getvalue().split() == ["pid", "=", "0,", "comm", "=", '"swapper/0\\000\\000'
                                      '\\000\\000\\000\\000",']
    for short, full in [(f"*list_head {task}", f"struct list_head {task}"),
                        ("jiffies", "p jiffies"), ("pid_t", "whatis pid_t"),
                        ("enum pid_type", "whatis enum pid_type"),
                        ("list_head", "struct list_head")]:
        a, b = _session(target), _session(target)
        assert a[0].execute(short) and b[0].execute(full)
        assert a[1].getvalue() == b[1].getvalue() != ""
    assert err.getvalue() == ""


def test_shell_escapes(target):
    session, out, _ = _session(target)
    assert session.execute("!echo one")
    assert session.execute("echo two")  # crash passes echo, ls, grep... to the shell
    assert out.getvalue() == "one\ntwo\n"


def test_command_help_goes_where_the_output_goes(target, tmp_path):
    session, out, err = _session(target)
    dest = tmp_path / "bt-help.txt"
    assert session.execute(f"bt -h > {dest}")
    assert dest.read_text().startswith("usage: bt ") and out.getvalue() == ""
    assert session.execute("help ps | grep -c '^usage: ps'")
    assert out.getvalue() == "1\n" and err.getvalue() == ""
    session, out, _ = _session(target, json_mode=True)
    assert session.execute("sys -h")
    doc = json.loads(out.getvalue())
    assert doc["kind"] == "help" and doc["data"]["text"].startswith("usage: sys")
