"""Loading and unloading extensions: Python files or installed packages adding commands.

crash loads C extensions (``extend file.so``); kdx loads Python ones. An extension is a
module that declares its commands with :func:`kdx.extension.command` (the same
declaration kdx's own commands use); loading it registers them in the session's command
table, unloading removes them. Installed packages advertise extension modules under the
``kdx.extensions`` entry-point group; they are loaded the first time the session meets a
word it does not know, or ``extend -s`` lists extensions, so start-up pays nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from kdx.session.command import CommandError, CrashCommand, module_commands

__all__ = ["ENTRY_POINT_GROUP", "Extension", "Extensions"]

#: The entry-point group an installed package names its extension modules under.
ENTRY_POINT_GROUP = "kdx.extensions"


@dataclass
class Extension:
    name: str  # the file as given, or the entry point's name
    module: str
    commands: list[CrashCommand]


@dataclass
class Extensions:
    """The extensions loaded in one session, in load order."""

    loaded: list[Extension] = field(default_factory=list)
    entry_points_seen: bool = False

    def load_file(self, table, path: Path) -> Extension:  # noqa: ANN001 (CommandTable)
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if path.suffix != ".py":
            raise CommandError(f"{path}: not a Python file (kdx extensions are .py files)")
        for known in self.loaded:
            if known.name == str(path):
                raise CommandError(f"{path}: already loaded")
        module_name = f"kdx_extension_{len(self.loaded)}_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise CommandError(f"{path}: cannot be loaded")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # the extension's own code: one line
            sys.modules.pop(module_name, None)
            raise CommandError(f"{path}: {type(err).__name__}: {err}") from None
        return self._register(table, str(path), module)

    def load_entry_points(self, table) -> list[Extension]:  # noqa: ANN001
        """Installed packages' extensions, once per session; a broken one is skipped."""
        if self.entry_points_seen:
            return []
        self.entry_points_seen = True
        from importlib.metadata import entry_points

        found = []
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                module = point.load()
            except Exception:  # noqa: S112 (a broken package must not break the session)
                continue
            if isinstance(module, ModuleType):
                try:
                    found.append(self._register(table, point.name, module))
                except CommandError:
                    continue
        return found

    def _register(self, table, name: str, module: ModuleType) -> Extension:  # noqa: ANN001
        commands = module_commands(module)
        if not commands:
            raise CommandError(f"{name}: declares no command (use kdx.extension.command)")
        added: list[CrashCommand] = []
        try:
            for command in commands:
                table.add(command)
                added.append(command)
        except CommandError:
            for command in added:
                table.remove(command)
            raise
        extension = Extension(name, module.__name__, commands)
        self.loaded.append(extension)
        return extension

    def unload(self, table, name: str | None) -> list[Extension]:  # noqa: ANN001
        """Unload the extension ``name`` (as it was loaded), or every one."""
        chosen = [e for e in self.loaded if name is None or e.name == name]
        if name is not None and not chosen:
            raise CommandError(f"{name}: not loaded")
        for extension in chosen:
            for command in extension.commands:
                table.remove(command)
            sys.modules.pop(extension.module, None)
            self.loaded.remove(extension)
        return chosen
