"""The arguments of a command line of positionals only, without argparse.

``hlookup check DATASET DIGEST`` and ``hlookup match DATASET FILE`` (a hook
that runs once per file, a pipeline step) give no option: their arguments
are only the command's positionals and every option's default.  argparse,
with the gettext and locale modules it imports, is about a fifth of such a
run's imports; :func:`quick_args` reads these command lines without it.

The command's options are learnt as argparse would learn them: its
``add_arguments`` runs against a :class:`_Recorder`, which notes each
argument's destination and default.  Whatever the recorder is not sure to
read exactly as argparse does (an option-like word, ``--help``, a count of
words the positionals do not take, an argument type that refuses a word, an
action it does not know, a required option) makes :func:`quick_args` return
None, and the command line goes to argparse, which gives its usual answer
and message.  ``tests/test_cli_startup.py`` compares both parsers' results
for every command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Namespace", "boolean_optional", "quick_args"]

#: argparse.SUPPRESS (a default that sets no attribute), spelt here so that
#: this module does not import argparse.
_SUPPRESS = "==SUPPRESS=="

#: Actions whose default is ``default=`` (None when not given).
_VALUED = frozenset(
    {"store", "append", "extend", "count", "store_const", "append_const"}
)


class Namespace(SimpleNamespace):
    """The parsed arguments: attributes, as ``argparse.Namespace``
    (``name in args`` included)."""

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__


class _Unsupported(Exception):
    """Something the recorder does not read exactly as argparse: leave the
    command line to argparse."""


class _Positional:
    __slots__ = ("choices", "default", "dest", "nargs", "type")

    def __init__(self, dest: str, kwargs: dict[str, Any]) -> None:
        self.dest = dest
        self.nargs = kwargs.get("nargs")
        if self.nargs not in (None, "+", "*"):
            raise _Unsupported
        self.type: Callable[[str], object] | None = kwargs.get("type")
        self.choices = kwargs.get("choices")
        self.default = kwargs.get("default")

    def value(self, word: str) -> object:
        # A word the type or the choices refuse: argparse says why.
        try:
            value = word if self.type is None else self.type(word)
        except Exception:
            raise _Unsupported from None
        if self.choices is not None and value not in self.choices:
            raise _Unsupported
        return value


class _Recorder:
    """Stands for a command's argparse parser while the command adds its
    arguments: notes the destination and default of each, in order."""

    def __init__(self) -> None:
        self.defaults: dict[str, object] = {}
        self.positionals: list[_Positional] = []
        self.set: dict[str, object] = {}

    def add_argument(self, *flags: str, **kwargs: Any) -> None:
        action = kwargs.get("action", "store")
        if action is _BOOLEAN_OPTIONAL:
            action = "store"  # --x / --no-x: its default as given
        if not isinstance(action, str) or kwargs.get("required"):
            raise _Unsupported  # another Action class; a required option
        if not flags or not flags[0].startswith("-"):
            if len(flags) != 1 or action != "store" or "dest" in kwargs:
                raise _Unsupported
            self.positionals.append(_Positional(flags[0], kwargs))
            return
        if action in ("help", "version"):
            return  # their default is SUPPRESS: no attribute
        dest = kwargs.get("dest") or _option_dest(flags)
        if action == "store_true":
            default = kwargs.get("default", False)
        elif action == "store_false":
            default = kwargs.get("default", True)
        elif action in _VALUED:
            default = kwargs.get("default")
            # argparse converts a string default with the type (when the
            # option is not given).
            kind = kwargs.get("type")
            if isinstance(default, str) and kind is not None:
                try:
                    default = kind(default)
                except Exception:
                    raise _Unsupported from None
        else:
            raise _Unsupported
        if default == _SUPPRESS:
            raise _Unsupported
        self.defaults.setdefault(dest, default)  # the first one wins

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _Recorder:
        return self

    def add_mutually_exclusive_group(self, *args: Any, **kwargs: Any) -> _Recorder:
        if kwargs.get("required"):
            raise _Unsupported
        return self

    def set_defaults(self, **kwargs: object) -> None:
        self.set.update(kwargs)

    def __getattr__(self, name: str) -> Any:
        raise _Unsupported  # e.g. add_subparsers: argparse reads those


#: What :func:`boolean_optional` gives the recorder.
_BOOLEAN_OPTIONAL = "boolean_optional"


def boolean_optional(parser: Any) -> Any:
    """The ``action=`` of a ``--x/--no-x`` option added to `parser`.

    Parameters
    ----------
    parser
        An ``argparse.ArgumentParser`` (or group), or the recorder of
        :func:`quick_args`.

    Returns
    -------
    object
        ``argparse.BooleanOptionalAction`` for argparse; for the recorder, a
        name it reads as such, so that learning a command's options needs
        no argparse.
    """
    if isinstance(parser, _Recorder):
        return _BOOLEAN_OPTIONAL
    import argparse  # loaded already: the parser is argparse's

    return argparse.BooleanOptionalAction


def _option_dest(flags: Sequence[str]) -> str:
    """argparse's destination of an option: its first long name, else its
    first short one, without the dashes, ``-`` as ``_``."""
    for flag in flags:
        if flag.startswith("--"):
            return flag[2:].replace("-", "_")
    return flags[0][1:].replace("-", "_")


def quick_args(command: str, module: Any, words: Sequence[str]) -> Namespace | None:
    """The parsed command line ``command WORDS...``, or None when argparse
    must read it.

    Parameters
    ----------
    command
        The command's name (the first word of the command line).
    module
        The command's module: its ``add_arguments`` and ``run``.
    words
        The words after the command's name.

    Returns
    -------
    Namespace or None
        What ``build_parser(command).parse_args([command, *words])`` gives
        (the same attributes and values), or None.
    """
    if any(not isinstance(w, str) or (w.startswith("-") and w != "-") for w in words):
        return None  # an option, --help, --, a negative number; not text
    rec = _Recorder()
    try:
        module.add_arguments(rec)
        values = _positionals(rec.positionals, words)
    except _Unsupported:
        return None
    if rec.set.keys() & rec.defaults.keys():
        return None  # set_defaults over an option's default: argparse's order
    attrs: dict[str, object] = {"command": command}
    attrs.update(rec.defaults)
    for dest, value in rec.set.items():
        attrs.setdefault(dest, value)
    attrs.update(values)
    attrs["run"] = rec.set.get("run", module.run)
    return Namespace(**attrs)


def _positionals(specs: list[_Positional], words: Sequence[str]) -> dict[str, object]:
    """Each positional's value: one word each, the last one (``+``, ``*``)
    the rest."""
    if any(s.nargs is not None for s in specs[:-1]):
        raise _Unsupported  # argparse's sharing of words between them
    fixed = len(specs) - (1 if specs and specs[-1].nargs is not None else 0)
    if len(words) < fixed or (len(words) > fixed and fixed == len(specs)):
        raise _Unsupported  # argparse reports the missing or extra words
    out: dict[str, object] = {}
    for spec, word in zip(specs[:fixed], words, strict=False):
        out[spec.dest] = spec.value(word)
    if fixed < len(specs):
        last, rest = specs[-1], words[fixed:]
        if not rest:
            if last.nargs == "+" or last.choices is not None:
                raise _Unsupported
            if last.default is not None:
                raise _Unsupported  # argparse's handling of such defaults
            out[last.dest] = []
        else:
            out[last.dest] = [last.value(w) for w in rest]
    return out
