"""The session's ``set`` variables that change what kdx prints, as crash's are set.

``set radix 16`` (or ``hex``) makes ``p``, ``struct``, ``union``, ``task`` and ``foreach``
print integers in hexadecimal unless ``-d`` says otherwise; ``set scroll on`` pages long
output on a terminal through ``$PAGER`` (``less`` by default); ``set silent on`` drops the
prompt, for scripted use. ``set -v`` lists them in crash's layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdx.model.session_records import SessionSetting
from kdx.session.command import CommandError

__all__ = ["VARIABLES", "Settings", "render_settings"]

#: Variable names ``set NAME [VALUE]`` takes.
VARIABLES = ("scroll", "radix", "silent", "hex", "dec")

_ON = {"on": True, "off": False, "1": True, "0": False}


@dataclass
class Settings:
    radix: int = 10
    scroll: bool = False
    silent: bool = False
    pager: str = "less"

    def assign(self, name: str, value: str | None) -> str:
        """Set ``name`` (when ``value`` is given) and say its value as crash does."""
        if name in ("hex", "dec"):
            name, value = "radix", name
        if name == "radix":
            if value is not None:
                self.radix = _radix(value)
            word = "decimal" if self.radix == 10 else "hex"
            return f"output radix: {self.radix} ({word})"
        if name == "scroll":
            if value is not None:
                self.scroll = _switch(name, value)
            return f"scroll: {'on' if self.scroll else 'off'} ({self.pager})"
        if name == "silent":
            if value is not None:
                self.silent = _switch(name, value)
                if self.silent:
                    self.scroll = False
            return "" if self.silent else "silent: off"
        raise CommandError(f"invalid set command: {name} (kdx's variables: "
                           f"{', '.join(VARIABLES)})")

    def listing(self, namelist: str, dumpfile: str) -> list[SessionSetting]:
        return [SessionSetting("scroll", f"{'on' if self.scroll else 'off'} ({self.pager})"),
                SessionSetting("radix", f"{self.radix} "
                               f"({'decimal' if self.radix == 10 else 'hexadecimal'})"),
                SessionSetting("silent", "on" if self.silent else "off"),
                SessionSetting("namelist", namelist),
                SessionSetting("dumpfile", dumpfile)]


def _radix(value: str) -> int:
    if value == "10" or value.startswith(("dec", "ten")):
        return 10
    if value == "16" or value.startswith(("hex", "six")):
        return 16
    raise CommandError(f"invalid set radix value: {value} (10 or 16)")


def _switch(name: str, value: str) -> bool:
    if value not in _ON:
        raise CommandError(f"invalid set {name} value: {value} (on or off)")
    return _ON[value]


def render_settings(settings: list[SessionSetting]) -> str:
    """``set -v``: names right-aligned to crash's column."""
    return "\n".join(f"{s.name:>14}: {s.value}" for s in settings)
