"""Plain classes that behave as the dataclasses they were.

Making a dataclass runs ``exec`` on generated source for its ``__init__``,
``__repr__`` and ``__eq__`` (for a frozen one also ``__setattr__``,
``__delattr__`` and ``__hash__``): 2-6 M instructions a class, with the
``dataclasses`` import on top, paid by every process that imports the
module.  The classes a one-shot ``match`` or ``scan`` imports
(``hashlookup.match``, ``hashlookup.scan.report``) write their ``__init__``
out instead, and :func:`dataclass_like` gives them the rest:

- ``__repr__`` and ``__eq__`` as a dataclass makes them (the fields in
  order), ``__hash__`` None, or for ``frozen=True`` the field tuple's hash
  and ``__setattr__``/``__delattr__`` raising
  ``dataclasses.FrozenInstanceError``;
- ``__match_args__``, and ``__dataclass_fields__`` and
  ``__dataclass_params__`` made at first use by the ``dataclasses`` module
  itself (from the ``__init__``'s parameters, annotations and defaults), so
  that ``dataclasses.fields``, ``asdict``, ``astuple``, ``replace`` and
  ``is_dataclass`` answer as they did.

The fields are the ``__init__``'s parameters, in order: write it as the
dataclass would (``self.x = x`` for each, ``object.__setattr__`` when
frozen; a ``default_factory`` field takes None and is named in
`factories`).  ``tests/test_cli_startup_paths.py`` compares each class with
the dataclass it stands for.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T", bound=type)

__all__ = ["dataclass_like"]


class _Lazy:
    """A class attribute the dataclasses module reads, made at first use."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, cls: type) -> Any:
        value = getattr(_model(cls), self.name)
        if cls.__dict__.get(self.name) is self:
            setattr(cls, self.name, value)  # a plain attribute from now on
        return value


def _fields(cls: type) -> tuple[str, ...]:
    code = cls.__init__.__code__  # type: ignore[misc]
    return tuple(code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount])


def _model(cls: type) -> type:
    """The dataclass `cls` stands for, made by the dataclasses module."""
    import dataclasses

    init = cls.__init__  # type: ignore[misc]
    names = _fields(cls)
    defaults = init.__defaults__ or ()
    first = init.__code__.co_argcount - len(defaults) - 1
    # The class's annotations (the dataclass's), else the __init__'s.
    notes = dict(init.__annotations__)
    for klass in reversed(cls.__mro__):
        notes.update(klass.__dict__.get("__annotations__", {}))  # noqa: RUF063
    options = cls._dataclass_like  # type: ignore[attr-defined]
    ns: dict[str, Any] = {
        "__annotations__": {n: notes.get(n, "object") for n in names},
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
    }
    for i, n in enumerate(names):
        if n in options["factories"]:
            ns[n] = dataclasses.field(default_factory=options["factories"][n])
        elif i >= first:
            ns[n] = defaults[i - first]
    model: type = dataclasses.dataclass(frozen=options["frozen"])(
        type(cls.__name__, (), ns)
    )
    return model


def _repr(self: Any) -> str:
    shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__match_args__)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:  # bool, or NotImplemented
    if other.__class__ is not self.__class__:
        return NotImplemented
    names = self.__match_args__
    return tuple(getattr(self, n) for n in names) == tuple(
        getattr(other, n) for n in names
    )


def _frozen_hash(self: Any) -> int:
    return hash(tuple(getattr(self, n) for n in self.__match_args__))


def _frozen(cls: type, names: tuple[str, ...]) -> None:
    """A frozen dataclass's __setattr__ and __delattr__: any attribute of
    an instance of `cls` itself, the fields only of a subclass's."""
    fields = frozenset(names)

    def __setattr__(self: Any, name: str, value: object) -> None:
        if type(self) is cls or name in fields:
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in fields:
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot delete field {name!r}")
        object.__delattr__(self, name)

    cls.__setattr__ = __setattr__  # type: ignore[assignment,method-assign]
    cls.__delattr__ = __delattr__  # type: ignore[assignment,method-assign]
    cls.__hash__ = _frozen_hash  # type: ignore[assignment,method-assign]


def dataclass_like(
    *,
    frozen: bool = False,
    repr: bool = True,
    factories: dict[str, Callable[[], Any]] | None = None,
) -> Callable[[T], T]:
    """Give a class with a hand-written ``__init__`` the rest of what
    ``dataclasses.dataclass(frozen=frozen, repr=repr)`` would give it.

    Parameters
    ----------
    frozen
        As ``dataclass(frozen=...)``.
    repr
        False keeps the class's own ``__repr__`` (``dataclass(repr=False)``).
    factories
        The ``default_factory`` of fields whose ``__init__`` default is None.

    Returns
    -------
    callable
        The class decorator.
    """

    def wrap(cls: T) -> T:
        names = _fields(cls)
        setattr(cls, "__match_args__", names)  # noqa: B010 - for mypy
        cls._dataclass_like = {  # type: ignore[attr-defined]
            "frozen": frozen,
            "factories": dict(factories or {}),
        }
        cls.__dataclass_fields__ = _Lazy("__dataclass_fields__")  # type: ignore[attr-defined]
        cls.__dataclass_params__ = _Lazy("__dataclass_params__")  # type: ignore[attr-defined]
        if repr:
            cls.__repr__ = _repr  # type: ignore[assignment,method-assign]
        cls.__eq__ = _eq  # type: ignore[assignment,method-assign]
        if frozen:
            _frozen(cls, names)
        else:
            cls.__hash__ = None  # type: ignore[assignment]
        return cls

    return wrap
