"""What every script's command line shares: one parser class, one boolean convention.

* ``Parser`` shows every flag's default in ``--help``, prints a bad flag as one line
  (``error: --timestep 'clock' is unknown: choose one of none, token, layerwise``) and exits
  with status 2, like ``common.errors.exit_on_usage_error``.
* ``boolean_flag`` adds ``--flag`` / ``--no-flag`` that also accept the older spelling
  ``--flag true`` / ``--flag false``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from common.errors import UsageError

TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")
METAVARS = {int: "N", float: "X"}


def boolean(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off), for ``type=``."""
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class BooleanFlag(argparse.Action):
    """``--flag`` (true), ``--no-flag`` (false) and ``--flag true|false``."""

    def __init__(self, option_strings: list[str], dest: str, default: bool = False, **kwargs):
        names = list(option_strings)
        for name in option_strings:
            if name.startswith("--"):
                names.append(f"--no-{name[2:]}")
        kwargs.setdefault("metavar", "true|false")
        super().__init__(names, dest, nargs="?", default=default, **kwargs)

    def __call__(self, parser, namespace, value, option_string=None):
        negative = option_string is not None and option_string.startswith("--no-")
        if negative and value is not None:
            raise argparse.ArgumentError(None, f"{option_string} takes no value, got {value!r}")
        if value is None:
            result = not negative
        else:
            try:
                result = boolean(value)
            except argparse.ArgumentTypeError as error:
                raise argparse.ArgumentError(None, f"{option_string} {error}") from None
        setattr(namespace, self.dest, result)

    def format_usage(self) -> str:
        return self.option_strings[0]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to every optional flag whose help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.default is argparse.SUPPRESS
            or action.required
            or not action.option_strings
            or "default" in text
            or isinstance(action, argparse._HelpAction)
        ):
            return text
        default = action.default
        shown = "none" if default is None else "''" if default == "" else "%(default)s"
        if isinstance(default, bool):
            shown = str(default).lower()
        return f"{text} (default: {shown})"

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, BooleanFlag):
            flag, negative = action.option_strings[0], action.option_strings[-1]
            return f"{flag} [true|false], {negative}"
        return super()._format_action_invocation(action)


def flag_name(action: argparse.Action | None) -> str:
    if action is None:
        return "argument"
    return action.option_strings[0] if action.option_strings else action.dest


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with defaults in ``--help`` and one-line errors."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            listed = ", ".join(str(c) for c in action.choices)
            raise argparse.ArgumentError(
                None, f"{flag_name(action)} {value!r} is unknown: choose one of {listed}"
            )

    def error(self, message: str) -> NoReturn:
        """One line on stderr, status 2 (no usage block: ``--help`` shows it)."""
        if message.startswith("argument "):
            message = message[len("argument ") :]
            flag, _, rest = message.partition(": ")
            message = f"{flag.split('/')[0]}: {rest}" if rest else message
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)

    def given(self, argv: Sequence[str] | None = None) -> set[str]:
        """The destinations of the flags ``argv`` (default: the command line) sets explicitly,
        whatever their values: a flag passed with its default value counts as given."""
        saved = {id(action): action.default for action in self._actions}
        try:
            for action in self._actions:
                action.default = argparse.SUPPRESS
            namespace, _ = self.parse_known_args(sys.argv[1:] if argv is None else list(argv))
        finally:
            for action in self._actions:
                action.default = saved[id(action)]
        return set(vars(namespace))

    def refuse_ignored(
        self, argv: Sequence[str] | None, ignored: Iterable[str], because: str
    ) -> None:
        """One UsageError naming a flag among ``ignored`` (destinations) that ``argv`` sets,
        which the combination ``because`` (e.g. "--bound discrete") would ignore."""
        given = self.given(argv)
        for dest in ignored:
            if dest in given:
                flag = next(a.option_strings[0] for a in self._actions if a.dest == dest)
                raise UsageError(f"{flag} is ignored with {because}: drop it")

    def flag(self, *names: str, **kwargs: Any) -> argparse.Action:
        """``add_argument`` that refuses a flag without help text."""
        if not kwargs.get("help"):
            raise ValueError(f"{names[0]}: every flag needs help text")
        if "metavar" not in kwargs and "choices" not in kwargs and "action" not in kwargs:
            kind = kwargs.get("type")
            if kind in METAVARS:
                kwargs["metavar"] = METAVARS[kind]
        return self.add_argument(*names, **kwargs)

    def boolean(self, name: str, default: bool = False, help: str = "") -> argparse.Action:
        """``--name`` / ``--no-name`` / ``--name true|false``."""
        return self.flag(name, action=BooleanFlag, default=default, help=help)

    def quiet(self) -> argparse.Action:
        return self.boolean(
            "--quiet",
            help="no progress bars (off a terminal they print a plain line every 30 s)",
        )


def choices(registry: Iterable[str]) -> list[str]:
    """A registry (dict or tuple) as argparse ``choices``."""
    return list(registry)
