"""Types of the kernel's global variables when no vmlinux is at hand.

BTF describes every type of the kernel but gives a type only to per-CPU variables: the
kernel's own BPF verifier never needs the others. kdx and drgn's helpers read a few dozen
globals (``init_task`` to walk tasks, ``modules`` for ``mod``, ``prb`` for the log...), so
this module keeps the C type of each of them, the way the kernel declares it. A table can
go stale when a kernel changes a declaration, so every entry is checked before use: the
type must exist in the dump's BTF and fit in the space kallsyms leaves before the next
symbol. A variable that fails the check is refused with a sentence naming it, never read
through a wrong type.

Example::

    >>> declared = Declarations(prog, btf_types)
    >>> declared.object("init_task")
    Object(prog, 'struct task_struct', address=0xffffffff82a1aa40)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import drgn

from kdx.errors import KdxError

__all__ = ["DECLARATIONS", "Declaration", "Declarations", "VariableTypeError"]


@dataclass(frozen=True)
class Declaration:
    """How the kernel declares one global variable.

    ``spelling`` is the C type as drgn's type parser reads it. An array whose length is
    a kernel configuration value has ``length``: an enumerator's name (found in BTF), a
    ``LENGTH(...)`` key of VMCOREINFO, ``"symbol"`` (from the space kallsyms leaves) or
    a number; the spelling then ends in ``[]``. Alternatives for older kernels follow
    ``|`` in ``spelling`` and are tried in order.
    """

    spelling: str
    length: str | int | None = None
    minimum: int = 1  # the least array length that makes sense (for "symbol")
    #: for ``"symbol"`` lengths: what every element is, so that padding and the next
    #: variable after the array are cut off: "image pointer" (into the kernel image),
    #: "string" (a ``char`` array holding one NUL-terminated string) or "letter first"
    #: (structs whose first byte is an upper-case letter)
    elements: str | None = None


class VariableTypeError(KdxError):
    """A declared type does not fit the dump: the table is stale for this kernel."""


def _d(spelling: str, length: str | int | None = None, minimum: int = 1,
       elements: str | None = None) -> Declaration:
    return Declaration(spelling, length, minimum, elements)


#: Globals read by kdx and by the drgn helpers it calls, as Linux 5.4 to 7.x declare them.
#: Per-CPU variables (``runqueues``, ``timer_bases``...) are not here: BTF types them.
DECLARATIONS: Mapping[str, Declaration] = {
    # tasks, pids, namespaces
    "init_task": _d("struct task_struct"),
    "init_pid_ns": _d("struct pid_namespace"),
    "init_uts_ns": _d("struct uts_namespace"),
    "init_ipc_ns": _d("struct ipc_namespace"),
    "init_net": _d("struct net"),
    "init_fs": _d("struct fs_struct"),
    "init_mm": _d("struct mm_struct"),
    "init_stack": _d("unsigned long []", "symbol", 512),
    "init_css_set": _d("struct css_set"),
    "root_task_group": _d("struct task_group"),
    "pid_max": _d("int"),
    "nr_threads": _d("int"),
    "total_forks": _d("unsigned long"),
    "task_state_array": _d("const char * const []", "symbol", elements="image pointer"),
    "arch_task_struct_size": _d("int"),
    "task_struct_cachep": _d("struct kmem_cache *"),
    "cgrp_dfl_root": _d("struct cgroup_root"),
    # CPUs
    "__per_cpu_offset": _d("unsigned long []", "symbol", 8192),
    "nr_cpu_ids": _d("unsigned int"),
    "__cpu_online_mask": _d("struct cpumask"),
    "__cpu_possible_mask": _d("struct cpumask"),
    "__cpu_present_mask": _d("struct cpumask"),
    "__cpu_active_mask": _d("struct cpumask"),
    "cpu_khz": _d("unsigned int"),
    "boot_cpu_data": _d("struct cpuinfo_x86"),
    "idt_table": _d("gate_desc [256]"),
    "avenrun": _d("unsigned long [3]"),
    # panic and capture
    "panic_cpu": _d("atomic_t"),
    "crash_notes": _d("note_buf_t *|u32 *"),
    "crashk_res": _d("struct resource"),
    "kexec_crash_image": _d("struct kimage *"),
    "panic_on_oops": _d("int"),
    "oops_in_progress": _d("int"),
    "sysctl_panic_on_oom": _d("int"),
    "sysctl_hung_task_timeout_secs": _d("unsigned long"),
    "system_state": _d("enum system_states"),
    "tainted_mask": _d("unsigned long"),
    "taint_flags": _d("const struct taint_flag []", "symbol", elements="letter first"),
    "klp_transition_patch": _d("struct klp_patch *"),
    # time
    "tk_core": _d("struct { seqcount_raw_spinlock_t seq; struct timekeeper timekeeper; }"),
    "timekeeper_data": _d("struct tk_data []", "symbol"),  # 6.17+
    "jiffies": _d("volatile unsigned long"),
    "jiffies_64": _d("u64"),
    "loops_per_jiffy": _d("unsigned long"),
    # log
    "prb": _d("struct printk_ringbuffer *"),
    "console_printk": _d("int [4]"),
    "log_buf": _d("char *"),
    "log_buf_len": _d("u32"),
    "saved_command_line": _d("char *"),
    "linux_banner": _d("const char []", "symbol", elements="string"),
    # modules
    "modules": _d("struct list_head"),
    "btf_modules": _d("struct list_head"),
    "mod_tree": _d("struct mod_tree_root"),
    # memory
    "slab_caches": _d("struct list_head"),
    "max_pfn": _d("unsigned long"),
    "max_low_pfn": _d("unsigned long"),
    "min_low_pfn": _d("unsigned long"),
    "high_memory": _d("void *"),
    "page_offset_base": _d("unsigned long"),
    "vmemmap_base": _d("unsigned long"),
    "vmalloc_base": _d("unsigned long"),
    "mem_section": _d("struct mem_section **"),
    "__highest_present_section_nr": _d("unsigned long"),
    "node_data": _d("struct pglist_data *[]", "LENGTH(node_data)"),
    "node_states": _d("nodemask_t []", "NR_NODE_STATES"),
    "nr_node_ids": _d("unsigned int"),
    "contig_page_data": _d("struct pglist_data"),
    "memblock": _d("struct memblock"),
    "_totalram_pages": _d("atomic_long_t"),
    "totalreserve_pages": _d("unsigned long"),
    "vm_zone_stat": _d("atomic_long_t []", "NR_VM_ZONE_STAT_ITEMS"),
    "vm_node_stat": _d("atomic_long_t []", "NR_VM_NODE_STAT_ITEMS"),
    "vm_numa_event": _d("atomic_long_t []", "NR_VM_NUMA_EVENT_ITEMS"),
    "vm_committed_as": _d("struct percpu_counter"),
    "sysctl_overcommit_kbytes": _d("unsigned long"),
    "sysctl_overcommit_ratio": _d("int"),
    "nr_swap_pages": _d("atomic_long_t"),
    "total_swap_pages": _d("long"),
    "nr_swapfiles": _d("unsigned int"),
    "swap_info": _d("struct swap_info_struct *[]", "symbol"),
    "swapper_spaces": _d("struct address_space *[]", "symbol"),
    "vmap_area_list": _d("struct list_head"),
    "vmap_area_root": _d("struct rb_root"),
    "vmap_nodes": _d("struct vmap_node *"),
    "nr_vmap_nodes": _d("unsigned int"),
    "pageflag_names": _d("const struct trace_print_flags []", "symbol"),
    "mt_slots": _d("const unsigned char []", "maple_type_count"),
    "memory_blocks": _d("struct xarray"),
    "sections_per_block": _d("int"),
    "memory_block_size_probed": _d("unsigned long"),
    "iomem_resource": _d("struct resource"),
    "e820_table": _d("struct e820_table *"),
    # files and devices
    "super_blocks": _d("struct list_head"),
    "file_systems": _d("struct file_system_type *"),
    "blockdev_superblock": _d("struct super_block *"),
    "chrdevs": _d("struct char_device_struct *[255]"),
    "major_names": _d("struct blk_major_name *[255]"),
    "cdev_map": _d("struct kobj_map *"),
    "block_class": _d("struct class"),
    "bus_kset": _d("struct kset *"),
    "dentry_hashtable": _d("struct hlist_bl_head *"),
    "inode_hashtable": _d("struct hlist_head *"),
    "mount_hashtable": _d("struct hlist_head *"),
    # interrupts, timers, system calls
    "nr_irqs": _d("int"),
    "total_nr_irqs": _d("unsigned int"),  # 7.2+: nr_irqs renamed
    "irq_desc_tree": _d("struct xarray"),
    "sparse_irqs": _d("struct maple_tree"),
    "softirq_vec": _d("struct softirq_action []", "NR_SOFTIRQS"),
    "sys_call_table": _d("const sys_call_ptr_t []", "symbol", elements="image pointer"),
    # network
    "net_namespace_list": _d("struct list_head"),
    "arp_tbl": _d("struct neigh_table"),
}

#: Lengths given by how many constants an enum has, where the kernel has no ``NR_`` name.
_ENUM_COUNTS = {"maple_type_count": "enum maple_type"}


class Declarations:
    """Typed drgn objects for declared globals, checked against kallsyms and BTF.

    ``find_type`` looks a type up (normally ``prog.type``); ``constant`` returns the
    value of an enumerator by name or None; ``vmcoreinfo`` is the dump's note.
    """

    def __init__(self, prog: drgn.Program, *, constant: Callable[[str], int | None],
                 vmcoreinfo: Mapping[str, str],
                 table: Mapping[str, Declaration] = DECLARATIONS) -> None:
        self.prog = prog
        self.constant = constant
        self.vmcoreinfo = vmcoreinfo
        self.table = table
        self._types: dict[str, drgn.Type] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.table

    def object(self, name: str) -> drgn.Object | None:
        """The variable ``name`` as an object, None if the kernel has no such symbol.

        Raises VariableTypeError when the declared type does not fit the dump.
        """
        try:
            symbol = self.prog.symbol(name)
        except LookupError:
            return None
        return drgn.Object(self.prog, self.type_of(name, symbol), address=symbol.address)

    def type_of(self, name: str, symbol: drgn.Symbol | None = None) -> drgn.Type:
        """The checked type of the declared variable ``name``."""
        if name not in self._types:
            symbol = symbol or self.prog.symbol(name)
            # the symbol travels as an argument: resolving a type may look up another
            # declared variable before this one is done
            self._types[name] = self._checked(name, self.table[name], symbol)
        return self._types[name]

    def _checked(self, name: str, decl: Declaration, symbol: drgn.Symbol) -> drgn.Type:
        errors = []
        room = symbol.size
        for spelling in decl.spelling.split("|"):
            try:
                kind = self._resolve(spelling.strip(), decl, symbol)
            except (LookupError, SyntaxError, ValueError) as err:
                errors.append(str(err))
                continue
            size = _size(kind)
            # kallsyms keeps no sizes: ``room`` is the distance to the next symbol, 0 when
            # unknown (drgn gives up beyond 64 KiB).
            if room and size is not None and size > room:
                errors.append(f"{spelling} needs {size} bytes, the symbol has {room}")
                continue
            return kind
        raise VariableTypeError(
            f"kdx cannot type the kernel variable {name!r} without the vmlinux: "
            + "; ".join(errors))

    def _resolve(self, spelling: str, decl: Declaration, symbol: drgn.Symbol) -> drgn.Type:
        if spelling.startswith("struct {"):
            return self._anonymous_struct(spelling)
        if not spelling.endswith("[]"):
            return self.prog.type(spelling)
        element = self.prog.type(spelling[:-2].strip())
        count = self._length(decl, element, symbol)
        return self.prog.array_type(element, count)

    def _length(self, decl: Declaration, element: drgn.Type, symbol: drgn.Symbol) -> int:
        rule = decl.length
        room = symbol.size
        if isinstance(rule, int):
            return rule
        if rule == "symbol":
            if not room and decl.elements == "string":
                # no next symbol near enough to bound it: the string's NUL does
                return self._trimmed(decl, element, _LONGEST_STRING, symbol.address)
            if not room:
                return decl.minimum
            return self._trimmed(decl, element, max(room // max(_size(element) or 1, 1), 1),
                                 symbol.address)
        if rule is None:
            raise ValueError("no length for an unsized array")
        if rule.startswith("LENGTH("):
            value = self.vmcoreinfo.get(rule)
            if value is None:
                raise LookupError(f"VMCOREINFO has no {rule}")
            return int(value, 0)
        if rule in _ENUM_COUNTS:
            return len(self.prog.type(_ENUM_COUNTS[rule]).enumerators or ())
        value = self.constant(rule)
        if value is None:
            raise LookupError(f"the dump's BTF has no constant {rule}")
        return value


    def _anonymous_struct(self, spelling: str) -> drgn.Type:
        """An unnamed struct (BTF cannot name it) laid out as the C compiler does:
        ``struct { seqcount_raw_spinlock_t seq; struct timekeeper timekeeper; }``."""
        members, offset, align = [], 0, 1
        for field in spelling[len("struct {"):].rstrip("} ").split(";"):
            if not field.strip():
                continue
            type_name, _, member = field.strip().rpartition(" ")
            kind = self.prog.type(type_name)
            member_align = drgn.alignof(kind)
            offset = -(-offset // member_align) * member_align
            members.append(drgn.TypeMember(kind, member, offset * 8))
            offset += drgn.sizeof(kind)
            align = max(align, member_align)
        return self.prog.struct_type(None, -(-offset // align) * align, members)

    def _trimmed(self, decl: Declaration, element: drgn.Type, count: int,
                 address: int) -> int:
        """The number of leading elements that are what the declaration says they are:
        kallsyms only bounds an array by the next symbol, so padding and unnamed data
        after it would otherwise read as more elements."""
        if decl.elements is None:
            return count
        if decl.elements == "string":
            data = self.prog.read(address, count)
            return data.index(b"\0") + 1 if b"\0" in data else count
        if decl.elements == "letter first":
            return self._letter_first(address, _size(element) or 1, count)
        start, end = self._image
        width = _size(element) or 8
        data = self.prog.read(address, count * width)
        for i in range(count):
            value = int.from_bytes(data[i * width:(i + 1) * width], "little")
            if not start <= value < end:
                return max(i, 1)
        return count

    def _letter_first(self, address: int, width: int, count: int) -> int:
        """Elements that start with an upper-case letter (``taint_flags``: each entry's
        ``c_true`` is the taint's letter); the padding after the array does not."""
        data = self.prog.read(address, count * width)
        for i in range(count):
            if not 0x41 <= data[i * width] <= 0x5A:
                return max(i, 1)
        return count

    @property
    def _image(self) -> tuple[int, int]:
        return self.prog.symbol("_stext").address, self.prog.symbol("_end").address


#: The most bytes read for a declared string whose end kallsyms does not bound.
_LONGEST_STRING = 4096


def _size(kind: drgn.Type) -> int | None:
    try:
        return drgn.sizeof(kind)
    except TypeError:
        return None
