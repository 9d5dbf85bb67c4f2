"""``py`` (``python``): a Python prompt inside the session, or ``py FILE.py ARGS``.

What drgn users do daily, without leaving the crash-style session: ``prog`` is the drgn
Program, ``dump`` the kdx API on the same dump (``dump.tasks()``, ``dump.run("bt")``),
and drgn's names and Linux helpers are imported (``Object``, ``find_task``,
``for_each_task``...). The prompt ends with Ctrl-D and the session goes on; a script's
uncaught exception is one error line naming the script's line.
"""

from __future__ import annotations

import argparse
import code
import contextlib
import io
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

from kdx.session.command import CommandError, crash_command, make_words_parser
from kdx.session.session import Session

__all__: list[str] = []

_IMPORTS = ("from drgn import *\n"
            "from drgn.helpers.common import *\n"
            "from drgn.helpers.linux import *\n")


def _py_parser():
    return make_words_parser("py", "a Python prompt with prog (drgn) and dump (kdx) bound "
                             "and drgn's helpers imported; py FILE.py ARGS runs a file, "
                             "py -c CODE runs CODE", "[-c CODE | FILE.py [ARGS ...]]")


def namespace(session: Session) -> dict[str, Any]:
    """``prog``, ``dump`` and drgn's helpers, as the prompt and scripts see them."""
    from kdx.api import Dump

    names: dict[str, Any] = {"__name__": "__main__"}
    exec(_IMPORTS, names)  # noqa: S102 (fixed text: drgn's own imports)
    dump = session.cached("py-dump", lambda: Dump(session.target))
    names.update(prog=session.prog, dump=dump, session=session, exit=_leave, quit=_leave)
    return names


def _leave(code: object = None) -> None:
    """exit()/quit() at the prompt: back to kdx (site's would close standard input)."""
    raise SystemExit(code)


@crash_command("py", "a Python prompt (prog, dump, drgn helpers) or py FILE.py ARGS",
               parser=_py_parser, aliases=("python",), needs_types=False)
def _py(session: Session, args: argparse.Namespace) -> None:
    words: list[str] = args.words
    if words[:1] == ["-c"] and len(words) != 2:
        raise CommandError("-c takes one argument: the code, quoted")
    names = namespace(session)
    if words and session.json:  # what the code prints becomes one JSON document
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            _code(words, names)
        session.emit("py", printed.getvalue(), "")
        return
    with _output_to(session):
        if words:
            _code(words, names)
        else:
            console = code.InteractiveConsole(names)
            with contextlib.suppress(SystemExit):  # exit() leaves the prompt, not kdx
                console.interact(banner="Python prompt: prog (drgn), dump (kdx); Ctrl-D "
                                 "returns to kdx", exitmsg="")


def _code(words: list[str], names: dict[str, Any]) -> None:
    if words[0] == "-c":
        _guarded("-c", lambda: exec(compile(words[1], "<py -c>", "exec"), names))
    else:
        _script(Path(words[0]), words[1:], names)


@contextlib.contextmanager
def _output_to(session: Session):  # noqa: ANN202 (a context manager)
    """print() goes where the command's output goes (a pipe, a file)."""
    if session.out is sys.stdout:
        yield
        return
    with contextlib.redirect_stdout(session.out):
        yield


def _script(path: Path, argv: list[str], names: dict[str, Any]) -> None:
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    saved = sys.argv
    sys.argv = [str(path), *argv]
    try:
        _guarded(str(path), lambda: runpy.run_path(str(path), init_globals=names,
                                                   run_name="__main__"))
    finally:
        sys.argv = saved


def _guarded(where: str, run: Any) -> None:
    """Run a user's code; its failure is one line naming where it happened."""
    try:
        run()
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise CommandError(f"{where} exited with status {stop.code}") from None
    except KeyboardInterrupt:
        raise
    except Exception as err:  # the user's code: any error, one line
        frames = [f for f in traceback.extract_tb(err.__traceback__)
                  if f.filename == where or f.filename.startswith("<py")]
        at = f" (line {frames[-1].lineno})" if frames else ""
        raise CommandError(f"{where}{at}: {type(err).__name__}: {err}") from None
