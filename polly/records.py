"""Frozen dataclasses that cost a quarter of what `@dataclass(frozen=True)` costs to define.

`@dataclass(frozen=True)` compiles six functions for each class (`__init__`, `__repr__`, `__eq__`,
`__hash__`, `__setattr__`, `__delattr__`) from generated source and makes a `Field` object for
each field: a five-field class takes 11.8 KiB, a record 2.9 KiB, of which 2.7 KiB is the class
itself (over 60 records load with the bot). None of the six needs code of its own: every record
shares one implementation of each, which reads the class's fields from a small plan (its field
names, defaults and which fields compare, hash and print: `polly.record_plan`), collected from
the class body as `dataclasses` collects them. The `Field` objects are made only when something asks for them:
`dataclasses.fields`, `replace`, `asdict` and `is_dataclass` work on a record, and the first of
them on a class runs `dataclasses`' own field processing for it (no method compiled); this
module's `replace`, `asdict` and `field_names` do the same from the plan, making none.

A record is built, compares, hashes, prints and refuses assignment as `@dataclass(frozen=True)`
would (`tests/polly/test_records.py`, also for every record in Polly); building one takes about a
microsecond more (the shared `__init__` is plain Python). What differs: `__dataclass_params__`
says `frozen=False` (the class refuses assignment all the same), so a `@dataclass(frozen=True)`
cannot subclass a record; until its fields are processed, a field declared with `field(...)` reads
as that `Field` on the class (instances always have their own value) and the class has no
`__match_args__`; `InitVar` fields are refused. `@record(frozen=False)` is the same for a class
whose records change (`@dataclass`: assignable, compared by value and so unhashable).
"""

from __future__ import annotations

import dataclasses
import reprlib
import threading
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

from polly.record_plan import REQUIRED, kw_only_default, plan_of, plans

T = TypeVar("T")

Values = Callable[[object], tuple[Any, ...]]


# ---------------------------------------------------------------- dataclasses' view, made when asked for

_processing = threading.RLock()  # processing a record processes its record bases first


class _FieldsOnDemand:
    """`__dataclass_fields__` of a record until something reads it: then dataclasses processes
    the class's fields (no method compiled) and its own dict replaces this one."""

    def __get__(self, instance: object, owner: type) -> dict[str, dataclasses.Field[Any]]:
        holder = next(k for k in owner.__mro__ if k.__dict__.get("__dataclass_fields__") is self)
        with _processing:
            if holder.__dict__.get("__dataclass_fields__") is self:
                plan_of(holder)  # read from the class body before dataclasses changes it
                dataclasses.dataclass(init=False, repr=False, eq=False, kw_only=kw_only_default[holder])(holder)
        return holder.__dict__["__dataclass_fields__"]


_FIELDS_ON_DEMAND = _FieldsOnDemand()


# ---------------------------------------------------------------- the shared methods


# Past the frozen __setattr__, one attribute at a time: the instance keeps its values inline, in
# the class's shared key table (filling its __dict__ in one update makes a dict of its own, 64-128
# bytes more for every record).
_set = object.__setattr__


def _init(self: object, *args: Any, **kwargs: Any) -> None:
    cls = self.__class__
    plan = plans.get(cls) or plan_of(cls)
    names = plan.names
    if args and len(args) == len(names) and not kwargs and plan.positional is names:
        # Every field, in order (a common call where records are built each tick): nothing to check.
        for name, value in zip(names, args, strict=True):
            _set(self, name, value)
    else:
        values = plan.template.copy()  # the fields' order: every record of the class sets them alike
        if args:
            if len(args) > len(plan.positional):
                raise TypeError(
                    f"{cls.__qualname__}.__init__() takes {len(plan.positional) + 1} positional arguments"
                    f" but {len(args) + 1} were given"
                )
            taken = plan.positional[: len(args)]
            if kwargs and not kwargs.keys().isdisjoint(taken):
                name = next(n for n in taken if n in kwargs)
                raise TypeError(f"{cls.__qualname__}.__init__() got multiple values for argument {name!r}")
            values.update(zip(taken, args, strict=True))
        if kwargs:
            values.update(kwargs)
            if len(values) != len(names) or (plan.not_init and not kwargs.keys().isdisjoint(plan.not_init)):
                unknown = plan.unknown(kwargs)
                raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected keyword argument {unknown!r}")
        for name, make in plan.factories:
            if values[name] is REQUIRED:  # not given
                values[name] = make()
        for name in plan.unset:
            del values[name]
        # By identity: `in values.values()` would call each value's __eq__ (an array's is ambiguous).
        missing = [name for name in plan.required if values[name] is REQUIRED] if plan.required else None
        if missing:
            raise TypeError(
                f"{cls.__qualname__}.__init__() missing {len(missing)} required argument(s): {', '.join(missing)}"
            )
        for name, value in values.items():
            _set(self, name, value)
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


# Per class: the values compared and hashed (C-level getters), made at the first comparison or hash.
_getters: dict[type, tuple[Values, Values]] = {}


def _getters_of(cls: type) -> tuple[Values, Values]:
    found = _getters.get(cls)
    if found is None:
        plan = plan_of(cls)
        found = _getters[cls] = (_getter(plan.compared), _getter(plan.hashed))
    return found


def _eq(self: object, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    compared = _getters_of(self.__class__)[0]
    return compared(self) == compared(other)


def _hash(self: object) -> int:
    return hash(_getters_of(self.__class__)[1](self))


@reprlib.recursive_repr()
def _repr(self: object) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in plan_of(self.__class__).shown)
    return f"{self.__class__.__qualname__}({shown})"


def _setattr(self: object, name: str, value: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: object, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _compiled_init(cls: type) -> Callable[..., None] | None:
    """For a frozen record built many times a tick (`hot=True`), an `__init__` compiled for its
    fields that fills the instance's `__dict__` in one call: 0.55 µs for ten fields, where
    dataclasses' frozen `__init__` (one `object.__setattr__` per field) takes 1.2 µs. The
    instance then has a dict of its own (~120 bytes more): right for records that live a tick.
    None where the fields need more than positional arguments with plain defaults (dataclasses'
    `__init__` is used then)."""
    plan = plan_of(cls)
    if plan.positional is not plan.names or plan.factories or plan.not_init or plan.post_init is not None:
        return None
    names = plan.names
    defaults = [name for name in names if plan.template[name] is not REQUIRED]
    if defaults and any(plan.template[name] is REQUIRED for name in names[names.index(defaults[0]) :]):
        return None  # a required field after a default one: dataclasses says what is wrong
    if any(not name.isidentifier() or name == "self" or name.startswith("_default_") for name in names):
        return None
    namespace: dict[str, Any] = {}
    parameters = []
    for name in names:
        if plan.template[name] is REQUIRED:
            parameters.append(name)
        else:
            namespace[f"_default_{name}"] = plan.template[name]
            parameters.append(f"{name}=_default_{name}")
    values = ", ".join(f"{name!r}: {name}" for name in names)
    exec(f"def __init__(self, {', '.join(parameters)}):\n    self.__dict__.update({{{values}}})\n", namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init


def _make_record(cls: type[T], kw_only: bool, frozen: bool = True, eq: bool = True, hot: bool = False) -> type[T]:
    own = dict(vars(cls))
    if not cls.__doc__:  # dataclass would build one from inspect.signature
        cls.__doc__ = cls.__name__
    kw_only_default[cls] = kw_only
    compiled = _compiled_init(cls) if hot and frozen and "__init__" not in own else None
    if compiled is not None:
        type.__setattr__(cls, "__dataclass_fields__", _FIELDS_ON_DEMAND)
        type.__setattr__(cls, "__init__", compiled)
    elif hot:  # fields _compiled_init does not take: dataclass compiles its __init__ (~2 KiB more)
        dataclasses.dataclass(init=True, repr=False, eq=False, frozen=frozen, kw_only=kw_only)(cls)
    else:
        type.__setattr__(cls, "__dataclass_fields__", _FIELDS_ON_DEMAND)
        if "__init__" not in own:
            type.__setattr__(cls, "__init__", _init)
    if "__repr__" not in own:
        type.__setattr__(cls, "__repr__", _repr)
    if eq and "__eq__" not in own:
        type.__setattr__(cls, "__eq__", _eq)
    if frozen:
        type.__setattr__(cls, "__setattr__", _setattr)
        type.__setattr__(cls, "__delattr__", _delattr)
        # As dataclass: a class's own __hash__ is kept, unless it is the None that defining __eq__ implies.
        if "__hash__" not in own or (own["__hash__"] is None and "__eq__" in own):
            type.__setattr__(cls, "__hash__", _hash)
    elif eq and "__hash__" not in own:
        type.__setattr__(cls, "__hash__", None)  # as dataclass: mutable and compared by value, so unhashable
    return cls


# ---------------------------------------------------------------- dataclasses' helpers, read from the plan


def field_names(cls: type) -> tuple[str, ...]:
    """The names of a record's fields, in order (`dataclasses.fields`, without its Field objects)."""
    return plan_of(cls).names if cls in kw_only_default else tuple(f.name for f in dataclasses.fields(cls))


def replace(obj: T, /, **changes: Any) -> T:
    """`dataclasses.replace`, read from a record's plan (no Field object made); any dataclass else."""
    cls = obj.__class__
    if cls not in kw_only_default:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    plan = plan_of(cls)
    for name in plan.names:
        if name in plan.not_init:
            if name in changes:
                raise ValueError(f"field {name} is declared with init=False, it cannot be specified with replace()")
        elif name not in changes:
            changes[name] = getattr(obj, name)
    return cls(**changes)


def asdict(obj: object) -> dict[str, Any]:
    """`dataclasses.asdict` for a record, read from the plans: nested records and dataclasses, and
    the lists, tuples and dicts holding them, converted; other values as they are (dataclasses
    deep-copies them: a record's values are not changed in place)."""
    cls = obj.__class__
    if cls not in kw_only_default:
        return dataclasses.asdict(obj)  # type: ignore[call-overload]
    return {name: _as_value(getattr(obj, name)) for name in plan_of(cls).names}


def _as_value(value: Any) -> Any:
    cls = value.__class__
    if cls in kw_only_default:
        return asdict(value)
    if isinstance(value, dict):
        return cls((_as_value(k), _as_value(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        if hasattr(value, "_fields"):  # a named tuple takes its fields as arguments
            return cls(*[_as_value(v) for v in value])
        return cls(_as_value(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(
    *, kw_only: bool = False, frozen: bool = True, eq: bool = True, hot: bool = False
) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True)
def record(
    cls: type[T] | None = None, /, *, kw_only: bool = False, frozen: bool = True, eq: bool = True, hot: bool = False
) -> type[T] | Callable[[type[T]], type[T]]:
    """`@record`, `@record(kw_only=True)`: `@dataclass(frozen=True)`, lighter (see the module);
    `@record(frozen=False)` for `@dataclass`, `eq=False` to compare and hash by identity;
    `hot=True` for a class built many times a tick (an `__init__` compiled for it: `_compiled_init`)."""
    if cls is None:
        return lambda c: _make_record(c, kw_only, frozen, eq, hot)
    return _make_record(cls, kw_only)
