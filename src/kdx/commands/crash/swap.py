"""``swap``: the swap areas, as crash prints them (kdx.model.swap)."""

from __future__ import annotations

import argparse

from kdx.model.reading import READ_ERRORS
from kdx.model.swap import swap_devices
from kdx.render.crash.swap import render_swap
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

__all__: list[str] = []  # the commands register themselves through @crash_command


def _swap_parser() -> argparse.ArgumentParser:
    return make_parser("swap", "swap devices, as crash lists them")


@crash_command("swap", "swap devices: size, use, priority, file", parser=_swap_parser)
def _swap(session: Session, _args: argparse.Namespace) -> None:
    try:
        devices = swap_devices(session.prog)
    except READ_ERRORS as err:
        raise CommandError(f"cannot read the swap devices: {err}") from err
    session.emit("swap", devices, lambda: render_swap(devices))
