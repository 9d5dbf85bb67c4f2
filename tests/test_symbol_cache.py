"""The kernel symbol rows kept between sessions are the rows the vmlinux gives: a session
reading them from the cache names every address as one that read the ``.symtab``, and a
damaged or unwritable cache costs time, never an answer."""

from __future__ import annotations

from array import array
from pathlib import Path

import pytest

from kdx.model import symbols
from kdx.model.symbol_cache import as_views, cache_dir, cached_columns


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "kdx" / "symbols"


def _stored(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.columns"))


def _plain(loaded: tuple) -> tuple:  # noqa: ANN001
    """A load's contents as plain values, to compare two loads."""
    small, columns = loaded
    return small, {name: view.tolist() for name, view in columns.items()}


def _build(vmlinux: Path):  # noqa: ANN202
    return lambda: symbols._vmlinux_rows(vmlinux)


def test_cached_rows_equal_the_vmlinux_rows(sysrq, cache_home: Path) -> None:  # noqa: ANN001
    vmlinux = sysrq.vmlinux.resolve()
    fresh = _plain(as_views(symbols._vmlinux_rows(vmlinux)))
    assert cache_dir() == cache_home
    first = cached_columns(vmlinux, _build(vmlinux))
    assert len(_stored(cache_home)) == 1

    def must_not_build() -> None:
        raise AssertionError("the rows were built again instead of read from the cache")

    again = cached_columns(vmlinux, must_not_build)
    assert _plain(first) == fresh
    assert _plain(again) == fresh
    (first_value, _span), columns = again
    values, starts = columns["values"], columns["starts"]
    names = str(columns["names"], "latin-1").split("\n")[:-1]
    assert len(values) == len(names) == len(columns["letters"]) == len(columns["sizes"]) \
        == len(starts) - 1 > 100_000
    assert names[values.tolist().index(first_value)] in ("_text", "_stext")
    assert all(len(name) + 1 == end - start
               for name, start, end in zip(names, starts, starts[1:]))


def test_table_from_the_cache_names_as_the_symtab(sysrq, cache_home: Path) -> None:  # noqa: ANN001
    """The kernel table (KASLR offset applied) is the same read fresh or cached."""
    prog = sysrq.opened.prog
    vmlinux = sysrq.vmlinux.resolve()
    built = symbols._kernel_symbols(prog, vmlinux)
    assert _stored(cache_home)
    cached = symbols._kernel_symbols(prog, vmlinux)
    assert cached[0].addresses == built[0].addresses
    assert cached[0].names == built[0].names
    assert list(cached[0].types) == list(built[0].types)
    assert list(cached[1]) == list(built[1]) and cached[2] == built[2]
    assert cached[0][len(cached[0]) // 2] == built[0][len(built[0]) // 2]
    assert list(cached[0].names[-3:]) == list(built[0].names)[-3:]
    jiffies = prog.symbol("jiffies_64").address
    assert jiffies in cached[0].addresses
    # every symbol inside the kernel's sections moved by the KASLR offset, no other
    (_first, (low, high)), columns = symbols._vmlinux_rows(vmlinux)
    values = array("Q", columns["values"][1])
    offset = symbols._kaslr_offset(prog)
    assert cached[0].addresses == [v + offset if low <= v <= high else v for v in values]
    assert any(not low <= v <= high for v in values)  # the per-CPU symbols stay put


@pytest.mark.parametrize("damage", ["half", "foreign", "empty", "columns past the end"])
def test_a_damaged_cache_is_rebuilt(damage: str, sysrq, cache_home: Path) -> None:  # noqa: ANN001
    vmlinux = sysrq.vmlinux.resolve()
    good = _plain(cached_columns(vmlinux, _build(vmlinux)))
    [stored] = _stored(cache_home)
    data = stored.read_bytes()
    damaged = {"half": data[: len(data) // 2], "foreign": b"not a columns file",
               "empty": b"", "columns past the end": data[:-4096]}[damage]
    # a damaged file appears as kdx writes its files: whole, under the name
    replacement = stored.with_suffix(".new")
    replacement.write_bytes(damaged)
    replacement.replace(stored)
    assert _plain(cached_columns(vmlinux, _build(vmlinux))) == good
    assert stored.read_bytes() == data  # found unusable, so built and stored again
    assert _plain(cached_columns(vmlinux, lambda: None)) == good


def test_a_cache_in_a_file_still_answers(sysrq, cache_home: Path) -> None:  # noqa: ANN001
    """A cache path that cannot be a directory (a file stands there) is skipped."""
    cache_home.parent.mkdir(parents=True)
    cache_home.write_text("in the way")
    vmlinux = sysrq.vmlinux.resolve()
    rows = cached_columns(vmlinux, _build(vmlinux))
    assert _plain(rows) == _plain(as_views(symbols._vmlinux_rows(vmlinux)))
    assert cache_home.read_text() == "in the way"


def test_no_file_no_cache(tmp_path: Path, cache_home: Path) -> None:
    built = ((1, 2), {"values": ("Q", array("Q", [7]).tobytes())})
    assert _plain(cached_columns(tmp_path / "missing", lambda: built)) == \
        ((1, 2), {"values": [7]})
    assert not cache_home.exists()
