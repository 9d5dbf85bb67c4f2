"""``list`` and ``tree`` on real lab dumps (6.1 and 6.12), against crash 8.0.6.

crash runs once per dump on the commands below (each preceded by an ``eval`` marker so
its output can be cut out); kdx runs the same commands in one session. Every address,
position line and ``-s`` member line must be equal.
"""

from __future__ import annotations

import pytest
from crash_script import crash_sections, kdx_sections
from drgn.helpers.linux.list import list_for_each_entry
from drgn.helpers.linux.panic import panic_task
from drgn.helpers.linux.pid import for_each_task

pytestmark = pytest.mark.oracle


def walk_commands(prog) -> list[str]:  # noqa: ANN001 (drgn.Program)
    """What both tools run (crash's output is cached by this list)."""
    fs = prog["file_systems"].value_()
    mm = panic_task(prog).mm.value_()
    try:
        prog["sparse_irqs"]
        irqs = "tree -t maple sparse_irqs"  # 6.5 and later
    except KeyError:
        irqs = "tree -t xarray irq_desc_tree"
    return ["list -H modules", "list task_struct.tasks -H init_task.tasks",
            "list -r task_struct.tasks -H init_task.tasks",
            "list task_struct.tasks -s task_struct.comm,pid -h init_task",
            f"list -o file_system_type.next -s file_system_type.name,fs_flags {fs:x}",
            "list module.list -s module.name -H modules",
            "tree -t xarray init_pid_ns", "tree -t radix -s pid.level init_pid_ns",
            "tree -t rbtree -o vmap_area.rb_node free_vmap_area_root",
            "tree -t rbtree -o vmap_area.rb_node -s vmap_area.va_start,va_end -p "
            "free_vmap_area_root",
            "list task_struct.tasks -S task_struct.comm,pid,mm -h init_task",
            f"list -o file_system_type.next -S file_system_type.name,fs_flags,init_fs_context "
            f"{fs:x}",
            "tree -t xarray -p init_pid_ns",
            "tree -t rbtree -l -o vmap_area.rb_node free_vmap_area_root",
            f"tree -t maple -r mm_struct.mm_mt {mm:x}",
            f"tree -t maple -x -s vm_area_struct.vm_start -r mm_struct.mm_mt {mm:x}",
            irqs]


def maple_commands(prog) -> list[str]:  # noqa: ANN001 (drgn.Program)
    """Maple tree options (``-p -v -N``): a second crash run, its own cache key."""
    mm = panic_task(prog).mm
    root = mm.mm_mt.ma_root.value_()
    at = f"-r mm_struct.mm_mt {mm.value_():x}"
    commands = [f"tree -t maple -p {at}", f"tree -t maple -v {at}",
                f"tree -t maple -v -x {at}", f"tree -t maple -N {root:x}",
                f"tree -t maple -N -p {root:x}",
                f"tree -t maple -p -s vm_area_struct.vm_start {at}",
                "tree -t rbtree -v free_vmap_area_root",
                f"tree -t maple -N {at}"]
    try:
        prog["sparse_irqs"]
        commands += ["tree -t maple -p sparse_irqs", "tree -t maple -v sparse_irqs"]
    except KeyError:
        pass
    return commands


class Scene:
    """A lab dump (opened once for all test files) and what these tests name in it."""

    def __init__(self, lab_dump) -> None:  # noqa: ANN001 (LabDump)
        self.lab = lab_dump
        self.target = lab_dump.target
        self.prog = self.target.prog
        self.commands = walk_commands(self.prog)


@pytest.fixture(scope="module")
def dump(null_deref_each) -> Scene:  # noqa: ANN001 (fixture)
    return Scene(null_deref_each)


def run_kdx(dump: Scene, commands: list[str]) -> tuple[dict[str, str], str]:
    run = kdx_sections(dump.target, commands)
    return run.sections, run.stderr


@pytest.fixture(scope="module")
def both(dump, crash):  # noqa: ANN001, ANN201
    ours, errors = run_kdx(dump, dump.commands)
    return dump, ours, crash_sections(crash, dump.lab, dump.commands), errors


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_list_modules_and_tasks_match_crash(both) -> None:  # noqa: ANN001
    dump, ours, theirs, _ = both
    modules = [f"{m.list.address_of_().value_():x}" for m in
               list_for_each_entry("struct module", dump.prog["modules"].address_of_(),
                                   "list")]
    assert _lines(ours["list -H modules"]) == _lines(theirs["list -H modules"]) == modules
    for command in ["list task_struct.tasks -s task_struct.comm,pid -h init_task",
                    "list module.list -s module.name -H modules"]:
        assert _lines(ours[command]) == _lines(theirs[command]), command
    tasks = _lines(theirs["list task_struct.tasks -s task_struct.comm,pid -h init_task"])
    addresses = [line for line in tasks if not line.startswith(" ")]
    init = dump.prog["init_task"]
    drgn_tasks = [f"{t.value_():x}" for t in
                  list_for_each_entry("struct task_struct", init.tasks.address_of_(), "tasks")]
    assert addresses == [f"{init.address_:x}", *drgn_tasks]
    assert "  pid = 1," in tasks


def test_list_from_symbol_member_is_crash_list_from_h(both) -> None:  # noqa: ANN001
    """crash refuses ``-H init_task.tasks`` ("invalid argument"); kdx takes it as the
    member's address, so it lists every task but init_task, as ``-h init_task`` does
    after its first line (docs/crash-differences.md)."""
    _, ours, theirs, _ = both
    assert "invalid argument" in theirs["list task_struct.tasks -H init_task.tasks"]
    with_h = [line for line in
              _lines(theirs["list task_struct.tasks -s task_struct.comm,pid -h init_task"])
              if not line.startswith(" ")]
    assert _lines(ours["list task_struct.tasks -H init_task.tasks"]) == with_h[1:]
    assert _lines(ours["list -r task_struct.tasks -H init_task.tasks"]) == with_h[1:][::-1]


def test_list_next_pointer_chain_matches_crash(both) -> None:  # noqa: ANN001
    dump, ours, theirs, _ = both
    command = dump.commands[4]
    assert _lines(ours[command]) == _lines(theirs[command])
    assert '"sysfs",' in theirs[command] or '"proc",' in theirs[command]


def test_list_fast_members_match_crash(both) -> None:  # noqa: ANN001
    """``-S``: members read raw (unsigned, pointers in hex, strings quoted, code named)."""
    dump, ours, theirs, _ = both
    for command in dump.commands[10:12]:
        assert _lines(ours[command]) == _lines(theirs[command]), command
    assert '  comm = "init"' in ours[dump.commands[10]]
    assert "  pid = 1" in ours[dump.commands[10]].splitlines()


def test_tree_xarray_and_rbtree_match_crash(both) -> None:  # noqa: ANN001
    dump, ours, theirs, _ = both
    for command in ["tree -t xarray init_pid_ns", "tree -t xarray -p init_pid_ns",
                    "tree -t rbtree -o vmap_area.rb_node free_vmap_area_root",
                    "tree -t rbtree -l -o vmap_area.rb_node free_vmap_area_root",
                    dump.commands[9]]:
        assert theirs[command].strip(), command
        assert _lines(ours[command]) == _lines(theirs[command]), command
    # The IDR of the initial PID namespace holds one struct pid per PID in use.
    assert len(_lines(ours["tree -t xarray init_pid_ns"])) >= 50


def test_tree_maple_matches_crash(both) -> None:  # noqa: ANN001
    """Maple trees: a process's VMAs and, on 6.12, the interrupt descriptors (6.1 keeps
    them in an XArray)."""
    dump, ours, theirs, _ = both
    for command in dump.commands[14:]:
        assert theirs[command].strip(), command
        assert _lines(ours[command]) == _lines(theirs[command]), command
    vmas = _lines(ours[dump.commands[14]])
    assert len(vmas) >= 5 and all(line.startswith("ff") for line in vmas)
    assert "  vm_start = 0x401000," in ours[dump.commands[15]]


def test_tree_radix_is_the_xarray_walk(both) -> None:  # noqa: ANN001
    """crash 8.0.6 fails ``-t radix`` on kernels whose radix trees are XArrays; kdx
    walks them as XArrays (docs/crash-differences.md)."""
    _, ours, theirs, _ = both
    assert "radix trees do not exist" in theirs["tree -t radix -s pid.level init_pid_ns"]
    addresses = [line for line in _lines(ours["tree -t radix -s pid.level init_pid_ns"])
                 if not line.startswith(" ")]
    assert addresses == _lines(theirs["tree -t xarray init_pid_ns"])
    assert "  level = 0," in ours["tree -t radix -s pid.level init_pid_ns"]


def test_list_fault_keeps_what_was_read(dump) -> None:  # noqa: ANN001
    """A next pointer that leads nowhere ends the walk with crash's one line ("invalid
    list entry") after the entries read; an unreadable start is one line."""
    init = dump.prog.symbol("init_task").address
    # task_struct.pid as the "next pointer": pid and tgid of swapper make address 0,
    # which ends a plain list; pid 1's task gives 0x100000001, which faults.
    init_pid1 = [t for t in for_each_task(dump.prog) if t.pid.value_() == 1][0].value_()
    commands = [f"list task_struct.pid {init:x}", f"list task_struct.pid {init_pid1:x}",
                "list 0 10"]
    ours, errors = run_kdx(dump, commands)
    assert _lines(ours[commands[0]]) == [f"{init:x}"]
    assert _lines(ours[commands[1]]) == [f"{init_pid1:x}", "100000001"]
    assert ours[commands[2]] == ""
    assert "list: error: invalid list entry: 100000001" in errors
    assert "list: error: invalid list entry: 10" in errors
    assert errors.count("\n") == 2


@pytest.fixture(scope="module")
def maple(dump, crash):  # noqa: ANN001, ANN201
    commands = maple_commands(dump.prog)
    run = kdx_sections(dump.target, commands)
    return dump, commands, run, crash_sections(crash, dump.lab, commands)


def test_tree_maple_positions_and_nodes_match_crash(maple) -> None:  # noqa: ANN001
    """``-p`` (crash's running entry count and slot path), ``-N`` (from an encoded node
    pointer) and ``-v`` (the tree, every node with its raw slots, every slot's range)."""
    dump, commands, run, theirs = maple
    shown = [c for c in commands if "free_vmap_area_root" not in c and
             not ("-N" in c and "-r" in c)]
    for command in shown:
        assert theirs[command].strip(), command
        assert _lines(run.sections[command]) == _lines(theirs[command]), command
    positions = _lines(run.sections[commands[0]])
    assert positions[1] == "  index: 1  position: root/1"
    assert len(positions) >= 10 and positions[-1].startswith(
        f"  index: {len(positions) // 2}  position: root/")
    plain = _lines(run.sections[commands[3]])
    assert plain == [line for line in positions if not line.startswith(" ")]
    verbose = _lines(run.sections[commands[1]])
    mm = panic_task(dump.prog).mm
    assert verbose[0].startswith(f"maple_tree({mm.mm_mt.address_:x}) flags ")
    assert verbose[2].startswith("0-18446744073709551615: node 0x")
    assert "  0-4194303: 0x0" in verbose  # NULL slots are shown with -v


def test_tree_maple_option_errors_match_crash(maple) -> None:  # noqa: ANN001
    dump, commands, run, theirs = maple
    for command in ("tree -t rbtree -v free_vmap_area_root", commands[7]):
        assert run.sections[command] == ""
        message = theirs[command].strip()
        assert message.startswith("tree: ") and message in run.stderr.replace(
            "tree: error: ", "tree: "), command
