"""Frozen dataclasses that cost a third of what `@dataclass(frozen=True)` costs to define.

`@dataclass(frozen=True)` compiles six functions for each class (`__init__`, `__repr__`, `__eq__`,
`__hash__`, `__setattr__`, `__delattr__`) from generated source: a five-field class takes 11.8 KiB,
a record 3.8 KiB, of which 2.7 KiB is the class itself (62 records load with the bot). None of the
six needs code of its own: `@record` lets `dataclasses` collect the fields (so `dataclasses.fields`,
`replace` and `asdict` work) and gives every class one shared implementation of the six, which
reads the class's fields from a small table.
A record is built, compares, hashes, prints and refuses assignment as `@dataclass(frozen=True)`
would (`tests/polly/test_records.py`); building one takes about a microsecond more (the shared
`__init__` is plain Python, not code written for the class), far below what the few records a
monitor tick makes would feel. What differs: `__dataclass_params__` says `frozen=False` (the class
refuses assignment all the same), so a `@dataclass(frozen=True)` cannot subclass a record.
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


class _Factory:
    """A field's `default_factory`, told apart from a default value in an `_InitPlan`."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class _NotInit:
    """The default of a field `__init__` takes no argument for (`field(init=False)`)."""

    __slots__ = ("default",)

    def __init__(self, default: object) -> None:
        self.default = default


_REQUIRED = object()


class _InitPlan:
    """How the shared `__init__` builds one class's records: what `dataclasses` would have compiled,
    as two tuples over the fields (their names, their defaults) and the positional names (a plan
    is made at a class's first record; ~0.3 KiB for five fields)."""

    __slots__ = ("defaults", "name", "names", "positional", "post_init")

    def __init__(self, cls: type) -> None:
        fields = dataclasses.fields(cls)
        self.name = cls.__qualname__
        self.names = tuple(f.name for f in fields)
        self.defaults = tuple(_default(f) if f.init else _NotInit(_default(f)) for f in fields)
        positional = tuple(f.name for f in fields if f.init and not f.kw_only)
        self.positional = self.names if positional == self.names else positional
        self.post_init = getattr(cls, "__post_init__", None)

    def unknown(self, given: dict[str, Any]) -> str:
        taken = {
            name for name, default in zip(self.names, self.defaults, strict=True) if default.__class__ is not _NotInit
        }
        return sorted(set(given) - taken)[0]


def _default(f: dataclasses.Field[Any]) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return _Factory(f.default_factory)
    return _REQUIRED


_plans: dict[type, _InitPlan] = {}


def _init(self: object, *args: Any, **kwargs: Any) -> None:
    cls = self.__class__
    plan = _plans.get(cls) or _plans.setdefault(cls, _InitPlan(cls))
    if args:
        if len(args) > len(plan.positional):
            raise TypeError(
                f"{plan.name}.__init__() takes {len(plan.positional) + 1} positional arguments"
                f" but {len(args) + 1} were given"
            )
        for name, value in zip(plan.positional, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{plan.name}.__init__() got multiple values for argument {name!r}")
            kwargs[name] = value
    used = 0
    missing = []
    for name, default in zip(plan.names, plan.defaults, strict=True):
        if default.__class__ is _NotInit:
            default = default.default
            if default is _REQUIRED:
                continue  # as dataclass: left unset
        elif name in kwargs:
            object.__setattr__(self, name, kwargs[name])
            used += 1
            continue
        elif default is _REQUIRED:
            missing.append(name)
            continue
        object.__setattr__(self, name, default.make() if default.__class__ is _Factory else default)
    if used != len(kwargs):
        raise TypeError(f"{plan.name}.__init__() got an unexpected keyword argument {plan.unknown(kwargs)!r}")
    if missing:
        raise TypeError(f"{plan.name}.__init__() missing {len(missing)} required argument(s): {', '.join(missing)}")
    if plan.post_init is not None:
        plan.post_init(self)


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
    if not cls.__doc__:  # dataclass would build one from inspect.signature, for every class
        cls.__doc__ = cls.__name__
    # Fields only: dataclass compiles no method (init, repr, eq off; frozen is ours, below).
    made = dataclasses.dataclass(init=False, repr=False, eq=False, kw_only=kw_only)(cls)
    if "__init__" not in own:
        type.__setattr__(made, "__init__", _init)
    type.__setattr__(made, "__setattr__", _setattr)
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
