"""The ``recon`` command line: the app, assembled from one module per command (``reconciler.commands``)
and the commands kinds contribute (``Kind.commands``), the options before any command
(``commands.app_options``), and its entry point. No logic here."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import typer
from typer.core import TyperGroup, TyperOption

from . import scratch
from .commands import (app_options, coercion, apply, demo, destroy, drift, fmt, force_unlock, import_, init, output, plan,
                       sandbox, schema, show, state, validate, version)
from .commands.common import signals, term
from .errors import ReconError
from .interrupts import Interrupted, exit_now
from .resources import KINDS
from .terminal import LogLines


class _Group(TyperGroup):
    """Typer would turn Ctrl-C outside a command's own handling into a silent exit 130: say it."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted{' by ' + signals.received if signals.received else ''}") from None


def _flags_take_no_value() -> None:
    """Recent typers print ``<bool>`` in help beside a flag, which takes no value: print nothing there.
    (typer builds its options itself, so this adjusts its option class rather than a subclass.)"""
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich


_flags_take_no_value()
coercion.install()

#: What rich reads as a markup tag ("[" and a letter, "#", "/" or "@", up to "]"), with the backslashes before it.
MARKUP_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def _markup_escaped(text: str) -> str:
    """``text`` as rich markup that shows it as written (rich.markup.escape's rule, without importing rich
    for a command that shows no help)."""
    text = MARKUP_TAG.sub(lambda tag: f"{tag[1]}{tag[1]}\\{tag[2]}", text)
    return text + "\\" if text.endswith("\\") and not text.endswith("\\\\") else text


def _help_as_written(command) -> None:
    """typer reads help texts as Rich markup, where a "[default: recon.toml]" or "[drift]" vanishes: recon's
    help texts are plain text, so escape what would be read as markup, in ``command`` and all below it."""
    for item in [command, *command.params]:
        for attribute in ("help", "short_help", "epilog"):
            if isinstance(getattr(item, attribute, None), str):
                setattr(item, attribute, _markup_escaped(getattr(item, attribute)))
    for sub in getattr(command, "commands", {}).values():
        _help_as_written(sub)


#: The base of click's usage errors, in the click typer runs on (recent typers carry their own copy).
UsageError = next(base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException")

EXIT_CODES = ("Exit codes: 0 success, or nothing to do; 1 any error, usage errors included; "
              "2 changes (plan --detailed-exitcode) or drift (drift); 130 interrupted (Ctrl-C, SIGTERM).")

def _new_app() -> typer.Typer:
    return typer.Typer(
        name="recon",
        cls=_Group,
        help="Keep a Eucalyptus (or AWS-compatible) cloud in the state a TOML file describes.",
        epilog=EXIT_CODES,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )


app = _new_app()
app.callback()(app_options.options)
# Help lists commands in this order (then the groups: state, then the kinds' ones).
app.command()(init.init)
app.command()(validate.validate)
app.command()(plan.plan)
app.command()(apply.apply)
app.command()(destroy.destroy)
app.command()(drift.drift)
app.command()(show.show)
app.command()(output.output)
app.add_typer(state.app, name="state")
app.command("force-unlock")(force_unlock.force_unlock)
app.command()(sandbox.sandbox)
app.command()(demo.demo)
app.command("import")(import_.command(KINDS))
for _kind in KINDS.values():
    _kind.commands(app)
app.command()(fmt.fmt)
app.command()(schema.schema)
app.command()(version.version)


_built: dict[str | None, Any] = {}


def command(only: str | None = None):
    """The click command typer builds from ``app``, its help texts kept as written; built once.

    With ``only`` (a command or group name), the command of recon's own options and that one command
    alone, which is all ``recon ONLY …`` runs: building every command's options costs tens of
    milliseconds that ``recon validate`` notices. Once the whole command is built, it serves for all."""
    key = None if only is None or None in _built else only
    if key not in _built:
        built = typer.main.get_command(app if key is None else _app_of(key))
        _help_as_written(built)
        _built[key] = built
    return _built[key]


def _name(info) -> str:
    return info.name or typer.main.get_command_name(info.callback.__name__)


def _app_of(name: str) -> typer.Typer:
    """``app`` with its options and only the command (or group) ``name``."""
    one = _new_app()
    one.registered_callback = app.registered_callback
    one.registered_commands = [info for info in app.registered_commands if _name(info) == name]
    one.registered_groups = [info for info in app.registered_groups if info.name == name]
    return one


def _invoked(args: list[str]) -> str | None:
    """The command ``recon ARGS`` runs, if it is one of the app's (None: build them all)."""
    args = iter(args)
    for arg in args:
        if arg == "--log-file":
            next(args, None)
        elif not arg.startswith("-"):
            names = {_name(info) for info in app.registered_commands} | {g.name for g in app.registered_groups}
            return arg if arg in names else None
        elif arg != "--debug" and not arg.startswith("--log-file="):
            return None   # --help, or an option recon does not have: click says what it says of it
    return None


def main() -> None:
    """The ``recon`` entry point: signal handling, and one exit code table (EXIT_CODES)."""
    logger = logging.getLogger("reconciler")  # reconciler.cloud's notes (a call still waiting) reach the terminal
    logger.addHandler(LogLines(term))
    logger.setLevel(logging.INFO)
    scratch.sweep()    # what runs killed with SIGKILL left in TMPDIR
    with signals:
        try:
            code = command(_invoked(sys.argv[1:]))(standalone_mode=False, prog_name="recon")   # under python -m too
        except UsageError as exc:   # click's message, but exit 1, not click's 2
            exc.show()
            code = 1
        except typer.Abort:
            term.error("aborted")
            code = 1
        except Interrupted as exc:   # outside an apply's changes: what still runs only reads
            term.error(str(exc))
            exit_now(exc.exit_code)
        except ReconError as exc:
            term.error(str(exc))
            code = exc.exit_code
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
