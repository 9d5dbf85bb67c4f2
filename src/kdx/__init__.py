"""kdx: a toolkit for Linux kernel crashes, from kdump set-up to a verdict on a vmcore."""

__version__ = "0.1.0"
