"""``crashkernel=`` evaluated as kernel/crash_reserve.c does, checked on exact bytes.

The table holds the kernel's documented examples (Documentation/admin-guide/kdump/
kdump.rst, kernel-parameters.txt) and the edge cases of its parser: range boundaries,
the 128 MiB round-up, open ranges, high/low, CMA, offsets, and every rejection. The
real-data tests check the RAM figure and the reservation against what the lab's 6.1 and
6.12 guests' own kernels reported and reserved.
"""

from __future__ import annotations

import json
import re

import pytest

from kdx.capture import crashkernel as ck
from kdx.capture.system import System, system_ram

K, M, G, T = 1 << 10, 1 << 20, 1 << 30, 1 << 40
DOC = "crashkernel=512M-2G:64M,2G-:128M"


def _ev(cmdline: str, ram: int, arch: str = "x86_64") -> dict:
    e = ck.evaluate(cmdline, ram, arch)
    return {"size": e.size, "offset": e.offset, "low": e.low_size, "high": e.high,
            "cma": e.cma_size, "error": e.error, "reserved": e.reserved}


def ok(size: int, offset: int = 0, low: int = 0, high: bool = False, cma: int = 0) -> dict:
    return {"size": size, "offset": offset, "low": low, "high": high, "cma": cma,
            "error": None, "reserved": size + low + cma}


def rejected(error: str, size: int = 0, **kw: int) -> dict:
    out = {"size": size, "offset": 0, "low": 0, "high": False, "cma": 0, "error": error,
           "reserved": 0}
    out.update(kw)
    return out


CASES = [
    # kdump.rst's example: below 512M nothing, 512M-2G 64M, 2G and up 128M.
    ("doc 1900M rounds to 1920M", DOC, 1900 * M, ok(64 * M)),
    ("doc 1.9G rounds up to 2G", DOC, int(1.9 * G), ok(128 * M)),
    ("doc exactly 2G", DOC, 2 * G, ok(128 * M)),
    ("doc 2G minus 1 byte rounds to 2G", DOC, 2 * G - 1, ok(128 * M)),
    ("doc 2G-128M-1 rounds to 2G-128M", DOC, 2 * G - 128 * M - 1, ok(64 * M)),
    ("doc 500M rounds to 512M", DOC, 500 * M, ok(64 * M)),
    ("doc exactly 512M is inside (start inclusive)", DOC, 512 * M, ok(64 * M)),
    ("doc 384M+1 rounds to 512M", DOC, 384 * M + 1, ok(64 * M)),
    ("doc 380M rounds to 384M: no range", DOC, 380 * M,
     rejected("crashkernel size resulted in zero bytes")),
    ("doc 1T open end", DOC, T, ok(128 * M)),
    ("ubuntu 4000M rounds to 4G", "crashkernel=2G-4G:320M,4G-32G:512M", 4000 * M,
     ok(512 * M)),
    ("end is exclusive", "crashkernel=1G-2G:64M,2G-4G:96M", 2 * G, ok(96 * M)),
    ("first match wins", "crashkernel=0-:32M,1G-:64M", 2 * G, ok(32 * M)),
    ("range with offset", "crashkernel=512M-2G:64M,2G-:128M@16M", 4 * G,
     ok(128 * M, offset=16 * M)),
    ("offset ignored when no range matches", "crashkernel=4G-:128M@16M", 2 * G,
     rejected("crashkernel size resulted in zero bytes")),
    ("entry size >= rounded RAM before a later match", "crashkernel=0-1G:2G,1G-:64M",
     1920 * M, rejected("crashkernel: invalid size")),
    ("entry size equal to rounded RAM", "crashkernel=0-:2G", 1921 * M,
     rejected("crashkernel: invalid size")),
    ("bad range end <= start", "crashkernel=2G-1G:64M", 4 * G,
     rejected("crashkernel: end <= start")),
    ("range without ':'", "crashkernel=1G-2G,64M:1", 4 * G,
     rejected("crashkernel: ':' expected")),
    ("range without '-'", "crashkernel=1G:64M", 4 * G, rejected("crashkernel: '-' expected")),
    ("range without a size", "crashkernel=1G-:", 4 * G,
     rejected("crashkernel: Memory value expected")),
    ("range offset without a value", "crashkernel=1G-:64M@", 4 * G,
     rejected("crashkernel: Memory value expected after '@'")),
    # The simple form and its final check against the unrounded RAM.
    ("simple 160M (the lab)", "crashkernel=160M", 523732 * K, ok(160 * M)),
    ("simple with offset", "crashkernel=64M@16M", G, ok(64 * M, offset=16 * M)),
    ("hex and lowercase suffix", "crashkernel=0x4000000", G, ok(64 * M)),
    ("octal like strtoull", "crashkernel=0100m", G, ok(64 * M)),
    ("K suffix", "crashkernel=131072K", G, ok(128 * M)),
    ("size equal to RAM", "crashkernel=1G", G,
     rejected("crashkernel: size 1 GiB is not below the system RAM (1 GiB), so the kernel "
              "reserves nothing", size=G)),
    ("size below RAM but not rounded RAM", "crashkernel=1000M", 1000 * M + 1, ok(1000 * M)),
    ("zero size", "crashkernel=0", G, rejected("crashkernel: size is zero")),
    ("trailing garbage", "crashkernel=64Mx", G, rejected("crashkernel: unrecognized char: x")),
    ("no value", "crashkernel=", G, rejected("crashkernel: memory value expected")),
    ("nothing on the command line", "quiet splash", G,
     rejected("no crashkernel= on the command line")),
    # Several words: the last unsuffixed one wins; others do not interfere.
    ("last plain wins", "crashkernel=64M quiet crashkernel=128M", G, ok(128 * M)),
    ("plain wins over high", "crashkernel=512M,high crashkernel=256M", 16 * G, ok(256 * M)),
    ("colon later on the line is not a range", "crashkernel=256M root=UUID=a:b", 16 * G,
     ok(256 * M)),
    # ,high and ,low (x86_64 default low is max(swiotlb + 8M, 256M)).
    ("high with default low", "crashkernel=512M,high", 16 * G,
     ok(512 * M, low=256 * M, high=True)),
    ("high with explicit low", "crashkernel=1G,high crashkernel=128M,low", 16 * G,
     ok(G, low=128 * M, high=True)),
    ("low=0 disables the low part", "crashkernel=1G,high crashkernel=0,low", 16 * G,
     ok(G, low=0, high=True)),
    ("big swiotlb raises the default low", "swiotlb=262144 crashkernel=512M,high", 16 * G,
     ok(512 * M, low=520 * M, high=True)),
    ("bad low is an error", "crashkernel=1G,high crashkernel=1X,low", 16 * G,
     rejected("crashkernel: unrecognized char: X", size=G)),
    ("high of zero", "crashkernel=0,high", 16 * G, rejected("crashkernel: size is zero")),
    ("low alone reserves nothing", "crashkernel=256M,low", 16 * G,
     rejected("crashkernel=…,low and crashkernel=…,cma reserve nothing without a plain "
              "crashkernel= or a crashkernel=…,high")),
    # ,cma adds to a plain reservation; alone it is nothing; its value survives a bad
    # suffix check exactly as in the kernel.
    ("cma beside plain", "crashkernel=256M crashkernel=1G,cma", 16 * G,
     ok(256 * M, cma=G)),
    ("cma with garbage keeps its size", "crashkernel=256M crashkernel=1Gx,cma", 16 * G,
     ok(256 * M, cma=G)),
    ("cma beside high", "crashkernel=512M,high crashkernel=2G,cma", 16 * G,
     ok(512 * M, low=256 * M, high=True, cma=2 * G)),
]


@pytest.mark.parametrize(("cmdline", "ram", "want"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_kernel_rules(cmdline, ram, want):
    assert _ev(cmdline, ram) == want


def test_architectures():
    # arm64/riscv/loongarch default low is 128 MiB; ppc64le/s390x have no ,high at all.
    assert _ev("crashkernel=1G,high", 16 * G, "aarch64") == ok(G, low=128 * M, high=True)
    assert _ev("crashkernel=1G,high", 16 * G, "ppc64le")["error"] == \
        "no crashkernel= on the command line"
    assert _ev("crashkernel=256M crashkernel=1G,cma", 16 * G, "s390x") == ok(256 * M)


def test_memparse_like_the_kernel():
    assert ck.memparse("0x10") == (16, 4)
    assert ck.memparse("010") == (8, 3)
    assert ck.memparse("0x") == (0, 1)          # "0x" without a hex digit is octal 0
    assert ck.memparse("1E") == (1 << 60, 2)
    assert ck.memparse("2p") == (2 << 50, 2)
    assert ck.memparse("16E") == (0, 3)         # wraps at 64 bits like the kernel
    assert ck.memparse("x") == (0, 0)


def test_matched_range_and_rounding_are_reported():
    e = ck.evaluate(DOC, int(1.9 * G))
    assert (e.ram_rounded, e.matched, e.form) == (2 * G, "2G-:128M", "range")


# ------------------------------------------------------------- real guest state


def _guest(dump, state="after-kexec") -> System:
    return System(dump.dir / "guest-state" / state)


def test_ram_figure_is_the_kernels(null_deref):
    """The page-trimmed iomem System RAM equals the total in the 6.1 guest's boot line
    'Memory: …K/523732K available', and the guest's own reservation message agrees."""
    system = _guest(null_deref)
    figure = system_ram(system)
    dmesg = (null_deref.dir / "dmesg.txt").read_text()
    total_k = int(re.search(r"Memory: \d+K/(\d+)K available", dmesg).group(1))
    assert figure.bytes == total_k * K == 536301568
    assert figure.source == "/proc/iomem System RAM"
    reserved_mb, ram_mb = map(int, re.search(
        r"Reserving (\d+)MB of memory at \d+MB for crashkernel \(System RAM: (\d+)MB\)",
        dmesg).groups())
    assert ram_mb == figure.bytes >> 20
    e = ck.evaluate(system.cmdline(), figure.bytes)
    assert e.size == reserved_mb * M == system.int_file("/sys/kernel/kexec_crash_size")


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_guest_reservation_matches_evaluation(lab, kernel):
    dump = lab("null-deref-module", kernel=kernel)
    system = _guest(dump)
    e = ck.evaluate(system.cmdline(), system_ram(system).bytes)
    crash = [x for x in system.iomem() if x.name == "Crash kernel"]
    assert e.error is None and e.size == 160 * M
    assert [x.size for x in crash] == [e.size]
    assert system.int_file("/sys/kernel/kexec_crash_size") == e.size
    dmesg = (dump.dir / "dmesg.txt").read_text()
    m = re.search(r"crashkernel reserved: 0x([0-9a-f]+) - 0x([0-9a-f]+) \((\d+) MB\)", dmesg)
    if m:  # 6.12's generic reservation prints the range it took
        assert (int(m.group(1), 16), int(m.group(2), 16) - 1) == (crash[0].start, crash[0].end)
        assert int(m.group(3)) * M == e.size


def test_cli_reads_saved_state(kdx, null_deref):
    root = null_deref.dir / "guest-state" / "after-kexec"
    doc = json.loads(kdx("kdump", "crashkernel", "--root", root, "--json", check=True).stdout)
    data = doc["data"]
    assert doc["kind"] == "kdump.crashkernel"
    assert (data["size"], data["offset"], data["low_size"], data["high"], data["cma_size"],
            data["error"]) == (160 * M, "0x0", 0, False, 0, None)
    assert data["ram"] == 536301568 and data["ram_rounded"] == 512 * M
    text = kdx("kdump", "crashkernel", "--root", root, check=True).stdout
    assert "160 MiB (167772160 bytes)" in text


def test_cli_reports_the_kernels_error(kdx):
    proc = kdx("kdump", "crashkernel", "512M-2G:64M,2G-:128M", "--ram", "380M", "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)["data"]
    assert data["error"] == "crashkernel size resulted in zero bytes"
    assert data["size"] == 0 and data["ram_rounded"] == 384 * M
    proc = kdx("kdump", "crashkernel", "--cmdline", "ro crashkernel=1G,high", "--ram", "16G")
    assert proc.returncode == 0 and "low         256 MiB" in proc.stdout


def test_cli_bad_ram_is_one_line(kdx):
    proc = kdx("kdump", "crashkernel", "64M", "--ram", "lots")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "kdx: error: 'lots' is not a size: write it as 16G, 1900M, 1.9G or bytes"]


# ----------------------------------------------------------------- recommendations


@pytest.mark.parametrize(("distro", "arch", "ram", "cpus", "value", "size"), [
    ("rhel", "x86_64", 16 * G, 1, "2G-64G:256M,64G-:512M", 256 * M),
    ("fedora", "x86_64", 64 * G, 1, "2G-64G:256M,64G-:512M", 512 * M),
    ("rhel", "aarch64", 4000 * M, 1, "2G-4G:256M,4G-64G:320M,64G-:576M", 320 * M),
    ("rhel", "ppc64le", 8 * G, 1,
     "2G-4G:385M,4G-16G:513M,16G-64G:1025M,64G-128G:2049M,128G-:4097M", 513 * M),
    ("debian", "x86_64", 16 * G, 1, "512M-:192M", 192 * M),
    ("ubuntu", "x86_64", 4000 * M, 1,
     "2G-4G:320M,4G-32G:512M,32G-64G:1024M,64G-128G:2048M,128G-:4096M", 512 * M),
    ("debian", "x86_64", 16 * G, 4, "512M-:195M", 195 * M),
])
def test_recommend(distro, arch, ram, cpus, value, size):
    rec = ck.recommend(ram, distro, arch, cpus)
    assert (rec.value, rec.size) == (value, size)
    assert ck.evaluate("crashkernel=" + rec.value, ram, arch).size == size
    assert rec.warnings == () or distro in ("rhel", "fedora")


def test_recommend_below_the_table(kdx):
    rec = ck.recommend(1536 * M, "rhel")
    assert (rec.value, rec.size, rec.distro_default_size) == ("256M", 256 * M, 0)
    assert any("reserves nothing" in w for w in rec.warnings)
    out = kdx("kdump", "crashkernel", "--recommend", "--ram", "16G", "--distro", "debian",
              check=True).stdout
    assert "crashkernel=512M-:192M" in out and "update-grub" in out
    assert "/etc/default/grub.d/kdump-tools.cfg" in out
    out = kdx("kdump", "crashkernel", "--recommend", "--ram", "16G", "--distro", "rhel",
              check=True).stdout
    assert 'grubby --update-kernel=ALL --args="crashkernel=2G-64G:256M,64G-:512M"' in out
