"""Debug info read from the dump itself, for when no vmlinux is at hand.

kallsyms gives symbols, BTF gives types, ORC gives unwind tables: ``provider`` plugs them
into drgn so that every command works on a dump whose exact debuginfo package is lost.
"""
