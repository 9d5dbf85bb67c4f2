"""crash-style text renderers, one module per crash command family (``sys``, ``ps``, ...).

Each takes model records and returns the text crash 8.0.6 would print for them.
"""
