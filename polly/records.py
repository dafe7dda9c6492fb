"""Frozen dataclasses that cost a third of what `@dataclass(frozen=True)` costs to define.

`@dataclass(frozen=True)` compiles five functions for each class (`__repr__`, `__eq__`, `__hash__`,
`__setattr__`, `__delattr__`) besides `__init__`: about 13 KiB a class, 0.5 MiB over the 47 such
classes a running bot loads, a sixth of Polly's whole footprint. Only `__init__` depends on the
fields' names and defaults; the other five behave the same for every class, so `@record` keeps the
generated `__init__` and gives each class one shared implementation of the rest. A record is a
real frozen dataclass (`dataclasses.fields`, `replace`, `asdict`, `FrozenInstanceError`) that
compares, hashes and prints as `@dataclass(frozen=True)` would (`tests/polly/test_records.py`).
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")

Values = Callable[[object], tuple[Any, ...]]
# Per class: the values compared and hashed (C-level getters), the names shown (from `field()`).
_fields: dict[type, tuple[Values, Values, tuple[str, ...]]] = {}


def _getter(names: tuple[str, ...]) -> Values:
    """The named attributes' values as one tuple (`attrgetter` returns a bare value for one name)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        name = names[0]
        return lambda record: (getattr(record, name),)
    return lambda record: ()


def _fields_of(cls: type) -> tuple[Values, Values, tuple[str, ...]]:
    found = _fields.get(cls)
    if found is None:
        fields = dataclasses.fields(cls)
        found = _fields[cls] = (
            _getter(tuple(f.name for f in fields if f.compare)),
            _getter(tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))),
            tuple(f.name for f in fields if f.repr),
        )
    return found


def _eq(self: object, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    compared = _fields_of(self.__class__)[0]
    return compared(self) == compared(other)


def _hash(self: object) -> int:
    return hash(_fields_of(self.__class__)[1](self))


@reprlib.recursive_repr()
def _repr(self: object) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _fields_of(self.__class__)[2])
    return f"{self.__class__.__qualname__}({shown})"


def _setattr(self: object, name: str, value: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: object, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _make_record(cls: type[T], kw_only: bool) -> type[T]:
    own = dict(vars(cls))
    made = dataclasses.dataclass(frozen=True, repr=False, eq=False, kw_only=kw_only)(cls)
    type.__setattr__(made, "__setattr__", _setattr)  # replaces the generated pair
    type.__setattr__(made, "__delattr__", _delattr)
    if "__repr__" not in own:
        type.__setattr__(made, "__repr__", _repr)
    if "__eq__" not in own:
        type.__setattr__(made, "__eq__", _eq)
    # As dataclass: a class's own __hash__ is kept, unless it is the None that defining __eq__ implies.
    if "__hash__" not in own or (own["__hash__"] is None and "__eq__" in own):
        type.__setattr__(made, "__hash__", _hash)
    return made


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(*, kw_only: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True)
def record(cls: type[T] | None = None, /, *, kw_only: bool = False) -> type[T] | Callable[[type[T]], type[T]]:
    """`@record` or `@record(kw_only=True)`: `@dataclass(frozen=True)`, lighter (see the module)."""
    if cls is None:
        return lambda c: _make_record(c, kw_only)
    return _make_record(cls, kw_only)
