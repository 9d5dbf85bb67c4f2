"""Network devices, the ARP cache and a task's sockets — what crash's ``net`` shows.

"Which interfaces and addresses did the machine have, and what was this process talking
to?" are first questions about a network hang or a crash in a driver. The records carry
crash's choices: devices of one namespace in list order with every IPv4 then IPv6
address (IPv6 as inet_ntop writes it), ARP entries bucket by bucket, and for sockets the
family and type numbers plus the addresses crash prints (IPv4 dotted, IPv6 as eight
uncompressed hex groups).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Callable

import drgn
from drgn.helpers.linux.fs import for_each_file
from drgn.helpers.linux.net import (
    for_each_netdev,
    neigh_table_for_each_neighbor,
    netdev_ipv4_addrs,
)

from kdx.model.bounded import list_for_each_entry
from kdx.model.files import TaskId, task_id
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.textsafe import decode

_S_IFMT = 0o170000
_S_IFSOCK = 0o140000
AF_INET = 2
AF_INET6 = 10


@dataclass(frozen=True)
class NetDevice:
    """One network device: its ``struct net_device`` address, name and addresses."""

    device: Hex
    name: str
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


@dataclass(frozen=True)
class Neighbour:
    """One ARP cache entry. ``hw_type`` is the device's ARPHRD number; ``hw_address``
    holds as many bytes as the device's address length."""

    neighbour: Hex
    ip: str
    hw_type: int
    hw_address: tuple[int, ...]
    device: str
    state: int


@dataclass(frozen=True)
class Socket:
    """One socket a task holds. Addresses and ports are filled for INET and INET6
    sockets only (ports in host order)."""

    fd: int
    socket: Hex
    sock: Hex
    family: int
    type: int
    source: str | None = None
    source_port: int | None = None
    destination: str | None = None
    destination_port: int | None = None


@dataclass(frozen=True)
class TaskSockets:
    """A task's sockets. ``max_fds`` is its fd table's size, which decides whether a
    decimal ``-R`` reference is a descriptor or an address (crash's rule)."""

    task: TaskId
    sockets: tuple[Socket, ...]
    max_fds: int = 0


@dataclass(frozen=True)
class SocketReference:
    """crash's ``net -R REF``: a hexadecimal value matches a socket or sock address (or
    a descriptor with that value), a decimal one a descriptor. Either may be None (a
    word that is no number matches nothing)."""

    hexval: int | None = None
    decval: int | None = None


_HEX_LETTERS = frozenset("abcdefABCDEFxX")


def socket_reference(word: str, max_fds: int) -> SocketReference:
    """Read ``word`` as crash does for one task: a word with a hex letter (or ``0x``) is
    hexadecimal; a decimal word is a descriptor when it is not above the fd table's
    size, else it is taken as hexadecimal."""
    text = word[2:] if word.lower().startswith("0x") else word
    try:
        as_hex = int(text, 16)
    except ValueError:
        return SocketReference()
    if _HEX_LETTERS & set(word):
        return SocketReference(hexval=as_hex)
    value = int(word, 10)
    if value <= max_fds:
        return SocketReference(decval=value)
    return SocketReference(hexval=as_hex)


def socket_matches(entry: Socket, ref: SocketReference) -> bool:
    if ref.hexval is not None and ref.hexval in (entry.sock, entry.socket, entry.fd):
        return True
    return ref.decval is not None and ref.decval == entry.fd


def ipv4_text(value: int) -> str:
    """``net -N``: a number as the IPv4 address whose bytes are its low four bytes in
    memory order (little-endian), as crash hands it to inet_ntoa."""
    return socket.inet_ntoa((value & 0xFFFFFFFF).to_bytes(4, "little"))


# -- devices ----------------------------------------------------------------------------


def ipv6_text(raw: bytes) -> str:
    """An IPv6 address as glibc's inet_ntop writes it (crash's form)."""
    return socket.inet_ntop(socket.AF_INET6, raw)


def _ipv6_addresses(dev: drgn.Object) -> tuple[str, ...]:
    prog = dev.prog_
    idev = dev.ip6_ptr.read_()
    if not idev:
        return ()
    found = []
    for ifaddr in list_for_each_entry(
            "struct inet6_ifaddr", idev.addr_list.address_of_(), "if_list"):
        found.append(ipv6_text(prog.read(ifaddr.addr.address_of_().value_(), 16)))
    return tuple(found)


def net_device(dev: drgn.Object) -> NetDevice:
    return NetDevice(dev.value_(), decode(dev.name.string_()),
                     tuple(str(a) for a in netdev_ipv4_addrs(dev)), _ipv6_addresses(dev))


def net_namespace(task: drgn.Object) -> drgn.Object:
    """The network namespace ``task`` lives in (crash's ``net -n``)."""
    return task.nsproxy.net_ns.read_()


def net_devices(prog: drgn.Program, namespace: drgn.Object | None = None,
                warn: Callable[[str], None] | None = None) -> list[NetDevice]:
    """The devices of ``namespace`` (the initial one by default) in list order."""
    if namespace is None:
        namespace = prog["init_net"].address_of_()
    found = []
    for dev in for_each_netdev(namespace):
        try:
            found.append(net_device(dev))
        except READ_ERRORS as err:
            if warn is not None:
                warn(f"cannot read net_device {dev.value_():x}: {err}")
    return found


# -- ARP --------------------------------------------------------------------------------


def arp_cache(prog: drgn.Program) -> list[Neighbour]:
    """Every neighbour of the IPv4 ARP table, bucket by bucket as crash walks them."""
    table = prog["arp_tbl"]
    found = []
    for neigh in neigh_table_for_each_neighbor(table.nht.read_()):
        dev = neigh.dev.read_()
        length = dev.addr_len.value_()
        raw = prog.read(neigh.ha.address_of_().value_(), max(length, 0))
        key = prog.read(neigh.primary_key.address_of_().value_(), 4)
        found.append(Neighbour(neigh.value_(), socket.inet_ntoa(key), dev.type.value_(),
                               tuple(raw), decode(dev.name.string_()),
                               neigh.nud_state.value_()))
    return found


# -- sockets ----------------------------------------------------------------------------


def _inet_addresses(sk: drgn.Object, family: int) -> dict:
    prog = sk.prog_
    common = sk.__sk_common
    inet = drgn.cast("struct inet_sock *", sk)
    sport = socket.ntohs(inet.inet_sport.value_())
    dport = socket.ntohs(common.skc_dport.value_())
    if family == AF_INET:
        source = socket.inet_ntoa(prog.read(common.skc_rcv_saddr.address_of_().value_(), 4))
        destination = socket.inet_ntoa(prog.read(common.skc_daddr.address_of_().value_(), 4))
    else:
        source = _hex_groups(prog.read(common.skc_v6_rcv_saddr.address_of_().value_(), 16))
        destination = _hex_groups(prog.read(common.skc_v6_daddr.address_of_().value_(), 16))
    return {"source": source, "source_port": sport, "destination": destination,
            "destination_port": dport}


def _hex_groups(raw: bytes) -> str:
    """crash's IPv6 form: eight hex groups, nothing compressed."""
    return ":".join(f"{int.from_bytes(raw[i:i + 2], 'big'):x}" for i in range(0, 16, 2))


def socket_of_file(prog: drgn.Program, fd: int, file: drgn.Object) -> Socket | None:
    """The socket behind an open file, or None when the file is no socket."""
    dentry = file.f_path.dentry.read_()
    if not dentry:
        return None
    inode = dentry.d_inode.read_()
    if not inode or inode.i_mode.value_() & _S_IFMT != _S_IFSOCK:
        return None
    alloc = drgn.container_of(inode, "struct socket_alloc", "vfs_inode")
    sock_struct = alloc.socket.address_of_()
    sk = sock_struct.sk.read_()
    if not sk:
        return Socket(fd, sock_struct.value_(), 0, 0, 0)
    family = sk.__sk_common.skc_family.value_()
    kind = sk.sk_type.value_()
    extra = {}
    if family in (AF_INET, AF_INET6):
        try:
            extra = _inet_addresses(sk, family)
        except READ_ERRORS:
            extra = {}
    return Socket(fd, sock_struct.value_(), sk.value_(), family, kind, **extra)


def task_sockets(task: drgn.Object,
                 warn: Callable[[str], None] | None = None) -> TaskSockets:
    """The sockets among ``task``'s open files, in fd order."""
    prog = task.prog_
    found = []
    max_fds = 0
    if task.files:
        try:
            max_fds = task.files.fdt.max_fds.value_()
        except READ_ERRORS:
            max_fds = 0
        for fd, file in for_each_file(task):
            if not file:
                continue
            try:
                entry = socket_of_file(prog, fd, file)
            except READ_ERRORS as err:
                if warn is not None:
                    warn(f"PID {task.pid.value_()} fd {fd}: cannot read its file: {err}")
                continue
            if entry is not None:
                found.append(entry)
    return TaskSockets(task_id(task), tuple(found), max_fds)
