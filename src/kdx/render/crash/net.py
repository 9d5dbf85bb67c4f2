"""crash's ``net`` layouts (net.c): the device list, the ARP cache and ``-s``/``-S``
sockets.

Device lines put the address right-aligned in 16 columns, the name in ten, then the
addresses joined by commas. ARP lines follow crash's fixed columns and its hardware
type and state names. Socket lines give family and type names as crash spells them
(``DGRAM`` keeps its trailing blank, so one more space follows it), IPv4 endpoints as
``addr-port`` and IPv6 ones with the destination centred under the source's width.
"""

from __future__ import annotations

from kdx.model.net import AF_INET, AF_INET6, Neighbour, NetDevice, Socket, TaskSockets
from kdx.render.crash.layout import VADDR_WIDTH, field, rstrip_lines, task_header

DEVICES_HEADER = field("NET_DEVICE", VADDR_WIDTH, center=True, left=True) + \
    "  NAME       IP ADDRESS(ES)"
ARP_HEADER = ("NEIGHBOUR        IP ADDRESS      HW TYPE    HW ADDRESS         "
              "DEVICE  STATE")
SOCKETS_HEADER = ("FD      SOCKET            SOCK       FAMILY:TYPE SOURCE-PORT "
                  "DESTINATION-PORT")

_HW_TYPES = {1: "ETHER", 0: "NETROM", 2: "EETHER", 3: "AX25", 4: "PRONET", 5: "CHAOS",
             6: "IEEE802", 7: "ARCNET", 8: "APPLETLK", 15: "DLCI", 23: "METRICOM"}
_NUD_STATES = ((0x01, "INCOMPLETE"), (0x02, "REACHABLE"), (0x04, "STALE"),
               (0x08, "DELAY"), (0x10, "PROBE"), (0x20, "FAILED"), (0x40, "NOARP"),
               (0x80, "PERMANENT"))
_FAMILIES = {0: "UNSPEC", 1: "UNIX", 2: "INET", 3: "AX25", 4: "IPX", 5: "APPLETALK",
             6: "NETROM", 7: "BRIDGE", 8: "ATMPVC", 9: "X25", 10: "INET6", 11: "ROSE",
             12: "DECnet", 13: "NETBEUI", 14: "SECURITY/KEY", 16: "NETLINK/ROUTE",
             17: "PACKET", 18: "ASH", 19: "ECONET", 20: "ATMSVC", 22: "SNA", 23: "IRDA",
             24: "PPPOX"}
_TYPES = {1: "STREAM", 2: "DGRAM ", 3: "RAW", 4: "RDM", 5: "SEQPACKET", 10: "PACKET"}


def device_line(dev: NetDevice) -> str:
    addresses = ", ".join((*dev.ipv4, *dev.ipv6))
    return f"{field(f'{dev.device:x}', VADDR_WIDTH, center=True, right=True)}  " \
        f"{dev.name:<10} {addresses}"


def render_devices(devices: list[NetDevice]) -> str:
    return rstrip_lines("\n".join([DEVICES_HEADER, *(device_line(d) for d in devices)]))


def neighbour_line(entry: Neighbour) -> str:
    kind = _HW_TYPES.get(entry.hw_type, "UNKNOWN")
    if entry.hw_type == 1:
        hw = ":".join(f"{b:02x}" for b in entry.hw_address) + " "
    else:
        hw = "".join(f"{b:02x} " for b in entry.hw_address)
    states = "|".join(name for bit, name in _NUD_STATES if entry.state & bit)
    return f"{entry.neighbour:<16x} {entry.ip:<16}{kind:<10} {hw} {entry.device:<6}  {states}"


def render_arp(entries: list[Neighbour]) -> str:
    """The ARP cache; crash prints nothing at all when it is empty."""
    if not entries:
        return ""
    return rstrip_lines("\n".join([ARP_HEADER, *(neighbour_line(e) for e in entries)]))


def socket_info(entry: Socket) -> str:
    """crash's FAMILY:TYPE column and, for INET and INET6, the two endpoints."""
    family = _FAMILIES.get(entry.family, str(entry.family))
    text = f"{family}:{_TYPES.get(entry.type, str(entry.type))} "
    if entry.source is None:
        return text
    source = f"{entry.source}-{entry.source_port}"
    destination = f"{entry.destination}-{entry.destination_port}"
    if entry.family == AF_INET:
        return text + f" {source} {destination}"
    if entry.family == AF_INET6:
        return text + f"{source:>12} " + field(destination, len(source), center=True)
    return text


def socket_line(entry: Socket) -> str:
    return f"{entry.fd:2d} {entry.socket:>16x} {entry.sock:>16x} {socket_info(entry)}"


FULL_SOCKET_HEADER = "FD  " + field("SOCKET", VADDR_WIDTH, center=True, left=True) + \
    "  " + field("SOCK", VADDR_WIDTH, center=True, left=True)


def full_socket_block(entry: Socket, dump: str, first: bool) -> str:
    """``net -S``: one socket's addresses, a blank line, then its structures as gdb
    prints them; every socket but the first of a task is preceded by a blank line."""
    head = ("" if first else "\n") + FULL_SOCKET_HEADER + "\n"
    return head + f"{entry.fd:2d}  {entry.socket:>16x}  {entry.sock:>16x}\n\n" + dump


def render_sockets(record: TaskSockets, dumps: dict[int, str] | None = None, *,
                   header: bool = True, reference: bool = False) -> str:
    """One task's sockets: ``-s`` lines, or with ``dumps`` (fd -> structure text) the
    ``-S`` blocks. With ``reference`` (``-R``) only matching sockets were kept and a
    task without any prints nothing, not even "No open sockets."."""
    t = record.task
    lines = [task_header(t.pid, t.task, t.cpu, t.command)] if header else []
    if not record.sockets:
        if not reference:
            lines.append("No open sockets.")
    elif dumps is None:
        lines.append(SOCKETS_HEADER)
        lines.extend(socket_line(s) for s in record.sockets)
    else:
        lines.extend(full_socket_block(s, dumps.get(s.fd, ""), i == 0)
                     for i, s in enumerate(record.sockets))
    return rstrip_lines("\n".join(lines))
