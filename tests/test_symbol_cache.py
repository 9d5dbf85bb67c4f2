"""The kernel symbol rows kept between sessions are the rows the vmlinux gives: a session
reading them from the cache names every address as one that read the ``.symtab``, and a
damaged or unwritable cache costs time, never an answer."""

from __future__ import annotations

from array import array
from pathlib import Path

import pytest

from kdx.model import symbols
from kdx.model.symbol_cache import cache_dir, cached_rows


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "kdx" / "symbols"


def _stored(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.marshal"))


def test_cached_rows_equal_the_vmlinux_rows(sysrq, cache_home: Path) -> None:  # noqa: ANN001
    vmlinux = sysrq.vmlinux.resolve()
    fresh = symbols._vmlinux_rows(vmlinux)
    assert cache_dir() == cache_home
    first = cached_rows(vmlinux, lambda: symbols._vmlinux_rows(vmlinux))
    assert len(_stored(cache_home)) == 1

    def must_not_build() -> None:
        raise AssertionError("the rows were built again instead of read from the cache")

    again = cached_rows(vmlinux, must_not_build)
    assert first == fresh
    assert again == fresh
    values, names, starts, letters, sizes, first_value, _span = again
    values, sizes, starts = array("Q", values), array("Q", sizes), array("L", starts)
    names = names.split("\n")
    assert len(values) == len(names) == len(letters) == len(sizes) == len(starts) - 1 > 100_000
    assert names[values.index(first_value)] in ("_text", "_stext")
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
    raw, _names, _starts, _letters, _sizes, _first, (low, high) = symbols._vmlinux_rows(vmlinux)
    values = array("Q", raw)
    offset = symbols._kaslr_offset(prog)
    assert cached[0].addresses == [v + offset if low <= v <= high else v for v in values]
    assert any(not low <= v <= high for v in values)  # the per-CPU symbols stay put


def test_a_damaged_cache_is_rebuilt(sysrq, cache_home: Path) -> None:  # noqa: ANN001
    vmlinux = sysrq.vmlinux.resolve()
    good = cached_rows(vmlinux, lambda: symbols._vmlinux_rows(vmlinux))
    [stored] = _stored(cache_home)
    stored.write_bytes(stored.read_bytes()[: stored.stat().st_size // 2])
    assert cached_rows(vmlinux, lambda: symbols._vmlinux_rows(vmlinux)) == good
    stored.write_bytes(b"not a marshal file")
    assert cached_rows(vmlinux, lambda: symbols._vmlinux_rows(vmlinux)) == good
    assert cached_rows(vmlinux, lambda: None) == good  # the rebuilt file was stored


def test_a_cache_in_a_file_still_answers(sysrq, cache_home: Path) -> None:  # noqa: ANN001
    """A cache path that cannot be a directory (a file stands there) is skipped."""
    cache_home.parent.mkdir(parents=True)
    cache_home.write_text("in the way")
    vmlinux = sysrq.vmlinux.resolve()
    rows = cached_rows(vmlinux, lambda: symbols._vmlinux_rows(vmlinux))
    assert rows == symbols._vmlinux_rows(vmlinux)
    assert cache_home.read_text() == "in the way"


def test_no_file_no_cache(tmp_path: Path, cache_home: Path) -> None:
    assert cached_rows(tmp_path / "missing", lambda: ([1], ["x"])) == ([1], ["x"])
    assert not cache_home.exists()
