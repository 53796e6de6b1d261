"""numpy, and the ``inspect`` that dataclasses uses, imported on first use.

Importing numpy costs about 90 ms of CPU, a third of a whole ``hashlookup
match`` of ten million digest lines, whose text path (csrc/hl_linematch.c)
never needs it; so do ``info``, ``check`` and opening an index or dataset.
The modules on those paths take ``np`` from here::

    if TYPE_CHECKING:
        import numpy as np
    else:
        from hashlookup._lazy import numpy as np

What single lookups and the text match need is loaded when a file is
opened; numpy is imported by the first batch call.  A process that opens a
file and then drops privileges to a user who cannot read the installation
must import numpy before, if it uses batch calls (and
``concurrent.futures.thread`` for batch calls on several threads, which
``hashlookup._threads`` loads on first use; ``hashlookup.scan`` loads it),
and pyroaring if it reads labels (a hit's labels, label filters), which
``hashlookup.store.labels`` imports on first use.

The first attribute read imports numpy and copies its namespace into the
stand-in, so later reads are plain module-attribute lookups.  Concurrent
first reads are safe: ``importlib.import_module`` holds numpy's import lock.

:func:`import_dataclasses` imports the standard ``dataclasses`` module with
a stand-in for the ``inspect`` module it imports: ``inspect`` (with ast,
dis, tokenize and linecache) costs about half the start-up of
``hashlookup check``, and dataclasses reads it only to make a signature
docstring for a class without one (every class of this package has its
own).  Any attribute read through the stand-in imports the real
``inspect``, so dataclasses behaves as ever, for this package's classes and
for anyone else's.  No module on the lookup paths defines a dataclass, so
``hashlookup/__init__.py`` does not import it: it calls
:func:`defer_dataclasses` first thing, which has the first import of
dataclasses (by a command, a builder or the user) made that way.

:class:`NamedTuple` makes the same named-tuple classes as
``typing.NamedTuple`` without importing ``typing`` (with what it imports,
about 3 ms of every one-shot command); modules define their public named
tuples with it at run time and with ``typing.NamedTuple`` for type
checkers::

    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from hashlookup._lazy import NamedTuple
"""

from __future__ import annotations

import collections
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "NamedTuple",
    "defer_dataclasses",
    "import_dataclasses",
    "lazy_module",
    "numpy",
]


# types.ModuleType (importing types costs start-up; no module on the lookup
# path imports it)
if TYPE_CHECKING:
    from types import ModuleType as _ModuleType
else:
    _ModuleType = type(sys)


class _LazyModule(_ModuleType):
    """Stands for a module until one of its attributes is read."""

    def __getattr__(self, attr: str) -> Any:
        # Only reached for names not copied in yet (all of them before the
        # first import; afterwards the real module's own lazy attributes).
        if sys.modules.get(self.__name__) is self:
            # Read while standing in sys.modules (import_dataclasses): make
            # way for the real module.
            del sys.modules[self.__name__]
        import importlib  # (here: importing it costs every start-up)

        real = importlib.import_module(self.__name__)
        if "__file__" not in self.__dict__:
            self.__dict__.update(real.__dict__)
        return getattr(real, attr)


numpy: Any = _LazyModule("numpy")


def lazy_module(name: str) -> Any:
    """A stand-in for the module ``name``, imported when one of its
    attributes is first read (as :data:`numpy`).

    Parameters
    ----------
    name
        The module's absolute name, e.g. ``"tempfile"``.

    Returns
    -------
    module
        The stand-in (the real module itself once it was imported).
    """
    return sys.modules.get(name) or _LazyModule(name)


def import_dataclasses() -> None:
    """Import ``dataclasses`` (if nothing has yet) with its ``inspect`` on
    first use.

    For the time of that import a stand-in is ``sys.modules["inspect"]``
    (dataclasses imports nothing else that imports inspect); afterwards
    ``import inspect`` anywhere imports the real module, as before.
    """
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        return
    stand_in = _LazyModule("inspect")
    sys.modules["inspect"] = stand_in
    try:
        import dataclasses  # noqa: F401  (binds the stand-in as its inspect)
    finally:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]


class _DataclassesLoader:
    """Wraps the loader of ``dataclasses``: runs it with the inspect
    stand-in of :func:`import_dataclasses`, then steps aside (the module's
    ``__loader__`` and spec name the real loader)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self._loader
        stand_in = None
        if "inspect" not in sys.modules:
            stand_in = _LazyModule("inspect")
            sys.modules["inspect"] = stand_in
        try:
            self._loader.exec_module(module)
        finally:
            if stand_in is not None and sys.modules.get("inspect") is stand_in:
                del sys.modules["inspect"]


class _DataclassesFinder:
    """A ``sys.meta_path`` entry for one import, the first of
    ``dataclasses``: removes itself, asks the finders after it for the
    module and wraps its loader (:class:`_DataclassesLoader`)."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
        if name != "dataclasses":
            return None
        try:
            sys.meta_path.remove(_DataclassesFinder)
        except ValueError:  # another thread's import took it out
            pass
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = None if find is None else find(name, path, target)
            if spec is not None:
                if spec.loader is not None and "inspect" not in sys.modules:
                    spec.loader = _DataclassesLoader(spec.loader)
                return spec
        return None


def defer_dataclasses() -> None:
    """Have the first import of ``dataclasses`` (by anyone, if it comes)
    made as :func:`import_dataclasses` makes it: with its ``inspect`` on
    first use.

    The package's own modules on the lookup paths define no dataclass, so
    ``import hashlookup`` no longer imports dataclasses (with ``re``,
    ``enum`` and ``copy``: about a fifth of a library lookup's start-up);
    the commands and builders that do still get it without ``inspect``.
    A finder at the head of ``sys.meta_path`` waits for that import and
    removes itself then.
    """
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        return
    if _DataclassesFinder not in sys.meta_path:
        sys.meta_path.insert(0, _DataclassesFinder)


# What typing.NamedTuple leaves to collections.namedtuple or refuses to copy
# from the class body.
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})
_PROHIBITED = frozenset(
    {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
     "_field_defaults", "_make", "_replace", "_asdict", "_source"}
)  # fmt: skip


class _NamedTupleMeta(type):
    def __new__(
        mcls, typename: str, bases: tuple[type, ...], ns: dict[str, Any]
    ) -> Any:
        if not bases:  # NamedTuple itself
            return super().__new__(mcls, typename, bases, ns)
        # As typing.NamedTuple: fields from the annotations (in order),
        # defaults from the body, then the body's methods, properties and
        # docstring copied onto the collections.namedtuple class.  The
        # annotations stay strings (typing would wrap them in ForwardRef;
        # typing.get_type_hints reads both alike).
        fields = dict(ns.get("__annotations__", {}))
        defaults = [ns[name] for name in fields if name in ns]
        if any(name not in ns for name in list(fields)[len(fields) - len(defaults) :]):
            raise TypeError(f"{typename}: a field without a default follows one with")
        # (through a name: mypy wants literal arguments to namedtuple)
        make: Any = collections.namedtuple
        cls = make(typename, list(fields), defaults=defaults, module=ns["__module__"])
        cls.__annotations__ = cls.__new__.__annotations__ = fields
        for key, value in ns.items():
            if key in _PROHIBITED:
                raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
            if key not in _SPECIAL and key not in fields:
                setattr(cls, key, value)
        return cls


class NamedTuple(metaclass=_NamedTupleMeta):
    """Base of a named-tuple class, as ``typing.NamedTuple`` (see above)."""
