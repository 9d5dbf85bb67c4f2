"""The crash-compatible commands of a kdx session, one module per command family.

Each module exposes ``COMMANDS`` (a list of ``kdx.session.command.CrashCommand``); the
session discovers them, so a new family is a new module and nothing else.
"""
