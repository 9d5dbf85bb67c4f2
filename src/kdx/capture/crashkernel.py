"""``crashkernel=``: what the kernel will reserve for a given value and RAM, exactly.

kdump fails silently when the reservation is wrong: the kernel parses ``crashkernel=``
early in boot, prints at most one warning and reserves nothing. This module follows the
kernel's own parser (``kernel/crash_reserve.c``, ``lib/cmdline.c``'s ``memparse``)
character by character, so its answer is the kernel's answer, including its quirks:

* numbers are C ``strtoull`` numbers (``0x`` hex, leading ``0`` octal) with an optional
  K/M/G/T/P/E suffix, and overflow wraps at 64 bits;
* of several ``crashkernel=`` words the last one without a ``,high``/``,low``/``,cma``
  suffix wins, and ``,high``/``,low`` are read only when there is none;
* the range form ``start-[end]:size[,…][@offset]`` compares the RAM *rounded up to
  128 MiB* with ``start <= ram < end``; the first match wins; every entry's size is
  checked against the rounded RAM while parsing, and the final size against the RAM;
* a range list that matches nothing gives size 0, which the kernel rejects.

The RAM figure is ``memblock_phys_mem_size()`` (see ``kdx.capture.system.system_ram``),
not MemTotal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kdx.capture.system import human
from kdx.errors import KdxError
from kdx.model.records import Hex

SZ_1M = 1 << 20
SZ_128M = 128 << 20
SZ_4G = 4 << 30
U64 = (1 << 64) - 1
NAME = "crashkernel="
SUFFIXES = (",high", ",low", ",cma")

#: Architectures that use the kernel's generic reservation (``,high``/``,low`` work)
#: and their default low reservation when the main one ends up above 4 GiB.
GENERIC_ARCHES = {"x86_64": None, "aarch64": 128 * SZ_1M, "riscv64": 128 * SZ_1M,
                  "loongarch64": 128 * SZ_1M}
#: Architectures that also take ``,cma`` (kernel-parameters.txt: X86, ARM64, RISCV, PPC).
CMA_ARCHES = {"x86_64", "aarch64", "riscv64", "ppc64le"}
ARCHES = ("x86_64", "aarch64", "riscv64", "loongarch64", "ppc64le", "s390x")


class _Reject(Exception):
    """The kernel's parser returned -EINVAL; the message is what the kernel prints."""


class _Absent(Exception):
    """No ``crashkernel=`` word of the kind asked for (the kernel's -ENOENT)."""


# ---------------------------------------------------------------- kernel primitives


def _at(text: str, pos: int) -> str:
    """The C string's character at ``pos``: NUL past the end."""
    return text[pos] if pos < len(text) else "\0"


def _strtoull(text: str, pos: int) -> tuple[int, int]:
    """``simple_strtoull(s, &end, 0)``: base from the prefix, wrap on overflow."""
    base = 10
    if _at(text, pos) == "0":
        if _at(text, pos + 1) in "xX" and _at(text, pos + 2) in "0123456789abcdefABCDEF":
            base, pos = 16, pos + 2
        else:
            base = 8
    value = 0
    while True:
        c = _at(text, pos)
        digit = int(c, 16) if c in "0123456789abcdefABCDEF" else 99
        if digit >= base:
            return value, pos
        value = (value * base + digit) & U64
        pos += 1


def memparse(text: str, pos: int = 0) -> tuple[int, int]:
    """``memparse()``: a number and an optional K/M/G/T/P/E suffix (either case)."""
    value, pos = _strtoull(text, pos)
    shifts = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
    shift = shifts.get(_at(text, pos).lower())
    if shift is not None:
        value = (value << shift) & U64
        pos += 1
    return value, pos


def _last(cmdline: str, suffix: str | None) -> int | None:
    """``get_last_crashkernel()``: where the value of the last matching word starts.

    Like the kernel this finds ``crashkernel=`` anywhere (strstr), and a word counts as
    suffixed when the text before the next space ends with the suffix.
    """
    found = None
    p = cmdline.find(NAME)
    while p >= 0:
        end = cmdline.find(" ", p)
        word = cmdline[p:end if end >= 0 else len(cmdline)]
        if suffix is None:
            if not any(word.endswith(s) for s in SUFFIXES):
                found = p
        elif word.endswith(suffix):
            found = p
        p = cmdline.find(NAME, p + 1)
    return None if found is None else found + len(NAME)


@dataclass
class _Parsed:
    size: int = 0
    base: int = 0
    form: str = "simple"
    matched: str | None = None
    zero_note: str | None = None


def _parse_simple(text: str, pos: int) -> _Parsed:
    size, cur = memparse(text, pos)
    if cur == pos:
        raise _Reject("crashkernel: memory value expected")
    if _at(text, cur) == "@":
        base, _ = memparse(text, cur + 1)
        return _Parsed(size, base)
    if _at(text, cur) not in " \0":
        raise _Reject(f"crashkernel: unrecognized char: {_at(text, cur)}")
    return _Parsed(size, 0)


def _parse_suffix(text: str, pos: int, suffix: str) -> tuple[int, str | None]:
    """Returns the size and, like the kernel, keeps it even when the suffix check then
    fails (the error is returned beside it)."""
    size, cur = memparse(text, pos)
    if cur == pos:
        return size, "crashkernel: memory value expected"
    if not text.startswith(suffix, cur):
        return size, f"crashkernel: unrecognized char: {_at(text, cur)}"
    cur += len(suffix)
    if _at(text, cur) not in " \0":
        return size, f"crashkernel: unrecognized char: {_at(text, cur)}"
    return size, None


def _parse_ranges(text: str, pos: int, system_ram: int) -> _Parsed:
    """``parse_crashkernel_mem()``: the first range holding the rounded RAM."""
    total = -(-system_ram // SZ_128M) * SZ_128M
    out = _Parsed(form="range")
    cur = pos
    while True:
        entry_start = cur
        start, tmp = memparse(text, cur)
        if tmp == cur:
            raise _Reject("crashkernel: Memory value expected")
        cur = tmp
        if _at(text, cur) != "-":
            raise _Reject("crashkernel: '-' expected")
        cur += 1
        end = U64
        if _at(text, cur) != ":":
            end, tmp = memparse(text, cur)
            if tmp == cur:
                raise _Reject("crashkernel: Memory value expected")
            cur = tmp
            if end <= start:
                raise _Reject("crashkernel: end <= start")
        if _at(text, cur) != ":":
            raise _Reject("crashkernel: ':' expected")
        cur += 1
        size, tmp = memparse(text, cur)
        if tmp == cur:
            raise _Reject("crashkernel: Memory value expected")
        cur = tmp
        if size >= total:
            raise _Reject("crashkernel: invalid size")
        if start <= total < end:
            out.size, out.matched = size, text[entry_start:cur]
            break
        sep = _at(text, cur)
        cur += 1
        if sep != ",":
            break
    if out.size > 0:
        while _at(text, cur) not in "\0 @":
            cur += 1
        if _at(text, cur) == "@":
            cur += 1
            out.base, tmp = memparse(text, cur)
            if tmp == cur:
                raise _Reject("crashkernel: Memory value expected after '@'")
    else:
        out.zero_note = "crashkernel size resulted in zero bytes"
    return out


def _parse_plain(cmdline: str, system_ram: int) -> _Parsed:
    """``__parse_crashkernel(…, NULL)``: the range form when a ':' comes before the
    first space of the rest of the command line, the simple form otherwise."""
    pos = _last(cmdline, None)
    if pos is None:
        raise _Absent
    colon, space = cmdline.find(":", pos), cmdline.find(" ", pos)
    if colon >= 0 and (space < 0 or colon < space):
        return _parse_ranges(cmdline, pos, system_ram)
    return _parse_simple(cmdline, pos)


# ------------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class Evaluation:
    """What the kernel makes of a command line's ``crashkernel=`` on a machine.

    ``size``/``offset``/``low_size``/``high``/``cma_size`` are the parser's values (bytes);
    ``error`` is the reason the kernel reserves nothing (its own message where it prints
    one), or None; ``reserved`` is the total it reserves when there is no error.
    """

    value: str | None
    form: str
    arch: str
    ram: int
    ram_rounded: int
    size: int
    offset: Hex
    low_size: int
    high: bool
    cma_size: int
    error: str | None
    matched: str | None = None
    reserved: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


def crashkernel_words(cmdline: str) -> str | None:
    """The ``crashkernel=`` words of a command line, for display."""
    words = [w for w in cmdline.split(" ") if NAME in w]
    return " ".join(words) or None


def swiotlb_bytes(cmdline: str) -> int:
    """The SWIOTLB size the kernel will use: ``swiotlb=N`` slabs of 2 KiB, rounded up to
    128 slabs; 64 MiB by default. It sets x86_64's default low reservation."""
    slabs = 32768
    for m in re.finditer(r"(?:^| )swiotlb=(\d+)", cmdline):
        n = int(m.group(1))
        slabs = -(-n // 128) * 128
    return slabs << 11


def default_low_size(arch: str, cmdline: str = "") -> int:
    """``DEFAULT_CRASH_KERNEL_LOW_SIZE``: x86_64 keeps room for SWIOTLB bounce buffers
    plus 8 MiB, at least 256 MiB; the other generic architectures use 128 MiB."""
    if arch == "x86_64":
        return max(swiotlb_bytes(cmdline) + 8 * SZ_1M, 256 * SZ_1M)
    return GENERIC_ARCHES.get(arch) or 0


def evaluate(cmdline: str, ram: int, arch: str = "x86_64") -> Evaluation:
    """Evaluate ``cmdline`` as ``parse_crashkernel()`` does on ``arch`` with ``ram`` bytes."""
    ram_rounded = -(-ram // SZ_128M) * SZ_128M
    base = {"value": crashkernel_words(cmdline), "arch": arch, "ram": ram,
            "ram_rounded": ram_rounded}
    parsed = _Parsed(form="none")
    low, high, cma, error = 0, False, 0, None
    absent = False
    try:
        parsed = _parse_plain(cmdline, ram)
    except _Reject as err:
        error = str(err)
    except _Absent:
        absent = True
    if absent and arch in GENERIC_ARCHES:
        parsed, low, high, error = _parse_high_low(cmdline, arch)
    elif absent:
        error = _absent_reason(cmdline)
    if arch in CMA_ARCHES and not (absent and arch in GENERIC_ARCHES and error):
        pos = _last(cmdline, ",cma")
        if pos is not None:
            cma, _ = _parse_suffix(cmdline, pos, ",cma")
    if error is None and parsed.size == 0:
        error = parsed.zero_note or "crashkernel: size is zero"
    if error is None and parsed.size >= ram:
        error = (f"crashkernel: size {human(parsed.size)} is not below the system RAM "
                 f"({human(ram)}), so the kernel reserves nothing")
    reserved = 0 if error else parsed.size + low + cma
    notes = _placement_notes(parsed, low, high, cma, arch, cmdline) if not error else ()
    return Evaluation(**base, form=parsed.form, size=parsed.size, offset=parsed.base,
                      low_size=low, high=high, cma_size=cma, error=error,
                      matched=parsed.matched, reserved=reserved, notes=tuple(notes))


def _parse_high_low(cmdline: str, arch: str) -> tuple[_Parsed, int, bool, str | None]:
    """``crashkernel=X,high`` with an optional ``crashkernel=Y,low``."""
    pos = _last(cmdline, ",high")
    if pos is None:
        return _Parsed(form="none"), 0, False, _absent_reason(cmdline)
    size, err = _parse_suffix(cmdline, pos, ",high")
    parsed = _Parsed(size=size, form="high")
    if err:
        return parsed, 0, False, err
    if size == 0:
        return parsed, 0, False, "crashkernel: size is zero"
    pos = _last(cmdline, ",low")
    if pos is None:
        return parsed, default_low_size(arch, cmdline), True, None
    low, err = _parse_suffix(cmdline, pos, ",low")
    return (parsed, 0, False, err) if err else (parsed, low, True, None)


def _absent_reason(cmdline: str) -> str:
    if _last(cmdline, ",low") is not None or _last(cmdline, ",cma") is not None:
        return ("crashkernel=…,low and crashkernel=…,cma reserve nothing without a plain "
                "crashkernel= or a crashkernel=…,high")
    return "no crashkernel= on the command line"


def _placement_notes(parsed: _Parsed, low: int, high: bool, cma: int, arch: str,
                     cmdline: str) -> list[str]:
    """Where the kernel will put the reservation: this depends on the memory map at boot,
    so it is said in words rather than as an address."""
    notes: list[str] = []
    if parsed.base:
        notes.append(f"fixed at {parsed.base:#x}: if any of that memory is in use the "
                     "kernel reserves nothing (no fallback)")
    elif high:
        notes.append("placed above 4 GiB (below 4 GiB if there is no room), "
                     + (f"plus {human(low)} below 4 GiB for DMA buffers" if low
                        else "with no low part (,low is 0)"))
    elif arch in GENERIC_ARCHES:
        dflt = default_low_size(arch, cmdline)
        notes.append("placed below 4 GiB when there is room; otherwise above 4 GiB plus "
                     f"{human(dflt)} below 4 GiB for DMA buffers")
    if arch in GENERIC_ARCHES and not parsed.base:
        notes.append("aligned to 16 MiB" if arch == "x86_64" else "aligned as the "
                     "architecture requires")
    if cma:
        notes.append(f"plus {human(cma)} of CMA (Linux 6.17+): the first kernel may use it "
                     "for movable pages, which are then missing from the dump")
    return notes


# ------------------------------------------------------------------------ RAM option


def parse_size(text: str) -> int:
    """A user's size: ``16G``, ``1900M``, ``1.9G``, ``4GiB``, ``0x20000000`` or bytes."""
    m = re.fullmatch(r"\s*(0x[0-9a-fA-F]+|\d+(?:\.\d+)?)\s*([kmgtpeKMGTPE]?)(?:i?[bB])?\s*",
                     text)
    if not m:
        raise KdxError(f"'{text}' is not a size: write it as 16G, 1900M, 1.9G or bytes")
    number, unit = m.group(1), m.group(2).lower()
    shift = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}[unit]
    value = int(number, 16) if number.startswith("0x") else float(number)
    return int(value * (1 << shift))


# -------------------------------------------------------------------- recommendation

#: kdump-utils (``kdump-lib.sh`` kdump_get_arch_recommend_crashkernel), RHEL 10 / Fedora.
KDUMP_UTILS = {
    "x86_64": "2G-64G:256M,64G-:512M",
    "s390x": "2G-64G:256M,64G-:512M",
    "aarch64": "2G-4G:256M,4G-64G:320M,64G-:576M",
    "ppc64le": "2G-4G:384M,4G-16G:512M,16G-64G:1G,64G-128G:2G,128G-:4G",
}
#: Debian kdump-tools' ``/etc/default/grub.d/kdump-tools.cfg`` (1.10.7 in trixie;
#: bookworm's 1.8.1 has ``384M-:128M``).
DEBIAN = "512M-:192M"
DEBIAN_BOOKWORM = "384M-:128M"
#: Ubuntu's kdump-tools drop-in (amd64), as seen on Ubuntu 24.04+ systems.
UBUNTU = "2G-4G:320M,4G-32G:512M,32G-64G:1024M,64G-128G:2048M,128G-:4096M"
DISTROS = ("rhel", "fedora", "debian", "ubuntu")


@dataclass(frozen=True)
class Recommendation:
    """A ``crashkernel=`` value to use, why, and the commands that apply it."""

    distro: str
    arch: str
    ram: int
    ram_rounded: int
    cpus: int
    distro_default: str
    distro_default_size: int
    value: str
    size: int
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    commands: tuple[str, ...]


def distro_table(distro: str, arch: str) -> tuple[str, str]:
    """The distro's default ``crashkernel=`` value for ``arch`` and where it comes from."""
    if distro in ("rhel", "fedora"):
        table = KDUMP_UTILS.get(arch)
        if table is None:
            raise KdxError(f"kdump-utils has no default crashkernel for {arch}")
        return table, f"kdump-utils default for {arch} (kdump-lib.sh, RHEL 10 and Fedora)"
    if distro == "debian":
        return DEBIAN, ("Debian kdump-tools 1.10.7 default (/etc/default/grub.d/"
                        f"kdump-tools.cfg; bookworm's 1.8.1 uses {DEBIAN_BOOKWORM})")
    if distro == "ubuntu":
        return UBUNTU, "Ubuntu kdump-tools default (/etc/default/grub.d/kdump-tools.cfg)"
    raise KdxError(f"unknown distribution '{distro}': use one of {', '.join(DISTROS)}")


def add_to_sizes(table: str, delta: int) -> str:
    """Add ``delta`` bytes to every size of a range list (kdump-utils' _crashkernel_add)."""
    out = []
    for entry in table.split(","):
        rng, _, size = entry.rpartition(":")
        total = memparse(size)[0] + delta
        text = f"{total >> 30}G" if total % (1 << 30) == 0 else f"{total >> 20}M"
        out.append(f"{rng}:{text}" if rng else text)
    return ",".join(out)


def recommend(ram: int, distro: str, arch: str = "x86_64", cpus: int = 1) -> Recommendation:
    """The distro's default, evaluated exactly on this RAM, adjusted for the capture
    kernel's CPUs, with the reasoning and the commands that apply it."""
    if cpus < 1:
        raise KdxError("--cpus must be at least 1")
    table, origin = distro_table(distro, arch)
    reasons = [f"{origin}: crashkernel={table}"]
    warnings: list[str] = []
    delta = 0
    if arch == "ppc64le" and distro in ("rhel", "fedora"):
        delta = cpus * SZ_1M
        reasons.append(f"kdump-utils adds 1 MiB per capture-kernel CPU on ppc64le: "
                       f"+{cpus} MiB for {cpus} CPU(s)")
    elif cpus > 1:
        delta = (cpus - 1) * SZ_1M
        reasons.append(f"the capture kernel will boot {cpus} CPUs (nr_cpus={cpus}); distro "
                       "tables assume nr_cpus=1, so kdx adds 1 MiB per extra CPU (kdump-utils' "
                       f"per-CPU rule on ppc64le): +{cpus - 1} MiB")
    else:
        reasons.append("the capture kernel boots with nr_cpus=1 (both kdump-utils and "
                       "kdump-tools do so), so the machine's CPU count does not change the size")
    value = add_to_sizes(table, delta) if delta else table
    ev = evaluate(NAME + value, ram, arch)
    default_ev = evaluate(NAME + table, ram, arch)
    reasons.append(f"the kernel rounds the RAM ({human(ram)}) up to 128 MiB: "
                   f"{human(ev.ram_rounded)}")
    if ev.size:
        reasons.append(f"{human(ev.ram_rounded)} falls in range {ev.matched}: "
                       f"{human(ev.size)} reserved; the range list is kept on the command "
                       "line so the reservation follows RAM changes")
        size = ev.size
    else:
        first = value.split(",")[0].rpartition(":")[2]
        size = memparse(first)[0]
        warnings.append(f"the {distro} default reserves nothing for {human(ev.ram_rounded)} "
                        f"of RAM (its first range starts above it); kdx suggests a plain "
                        f"crashkernel={first}, the smallest size the table uses")
        value = first
        if size * 2 >= ram:
            warnings.append(f"{human(size)} is half the RAM or more: test the capture "
                            "kernel with less memory before relying on it")
    if distro in ("rhel", "fedora") and value != table:
        warnings.append("kdump-utils resets crashkernel= to its default on kernel updates: "
                        "set 'auto_reset_crashkernel no' in /etc/kdump.conf to keep this value")
    return Recommendation(distro=distro, arch=arch, ram=ram, ram_rounded=ev.ram_rounded,
                          cpus=cpus, distro_default=table,
                          distro_default_size=default_ev.size, value=value, size=size,
                          reasons=tuple(reasons), warnings=tuple(warnings),
                          commands=tuple(apply_commands(distro, value, table)))


def apply_commands(distro: str, value: str, default: str | None = None) -> list[str]:
    """Shell commands that put ``crashkernel=value`` on the next boot's command line."""
    if distro in ("rhel", "fedora"):
        cmds = [f'grubby --update-kernel=ALL --args="crashkernel={value}"']
        if value == default:
            cmds.append("# or, equivalently: kdumpctl reset-crashkernel --kernel=ALL")
        return cmds + ["reboot", "systemctl enable --now kdump", "kdumpctl status"]
    return [
        "# kdump-tools installed: its drop-in is read after /etc/default/grub and its "
        "crashkernel= comes last, so it is the one to change",
        f"sed -i 's/crashkernel=[^\" ]*/crashkernel={value}/' "
        "/etc/default/grub.d/kdump-tools.cfg",
        "# without kdump-tools: add it to /etc/default/grub instead",
        f"sed -i 's/^GRUB_CMDLINE_LINUX_DEFAULT=\"/&crashkernel={value} /' /etc/default/grub",
        "update-grub",
        "reboot",
        "kdump-config show",
    ]
