"""Frozen dataclasses that cost a quarter of what `@dataclass(frozen=True)` costs to define.

`@dataclass(frozen=True)` compiles six functions for each class (`__init__`, `__repr__`, `__eq__`,
`__hash__`, `__setattr__`, `__delattr__`) from generated source and makes a `Field` object for
each field: a five-field class takes 11.8 KiB, a record 2.9 KiB, of which 2.7 KiB is the class
itself (over 60 records load with the bot). None of the six needs code of its own: every record
shares one implementation of each, which reads the class's fields from a small plan (its field
names, defaults and which fields compare, hash and print), collected from the class body as
`dataclasses` collects them. The `Field` objects are made only when something asks for them:
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
import inspect
import re
import reprlib
import sys
import threading
import typing
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")

Values = Callable[[object], tuple[Any, ...]]


class _Factory:
    """A field's `default_factory`, told apart from a default value while fields are collected."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


_REQUIRED = object()
_MISSING = dataclasses.MISSING
Options = tuple[object, bool, bool, bool, bool | None, bool]  # default, init, kw_only, repr, hash, compare


class _Plan:
    """One record class's fields as the shared methods read them (~0.5 KiB for five fields): the
    names in order with their plain defaults, the required, factory-made and not-in-`__init__` ones, the
    positional names, and the names compared, hashed and shown. `__init__` merges these in C
    (a copy of the template, `dict.update`), then sets the attributes in the fields' order."""

    __slots__ = (
        "compared",
        "factories",
        "hashed",
        "names",
        "not_init",
        "positional",
        "post_init",
        "required",
        "shown",
        "template",
        "unset",
    )

    def __init__(self, cls: type, fields: dict[str, Options]) -> None:
        self.names = tuple(fields)
        plain: dict[str, object] = {}
        required: list[str] = []
        factories: list[tuple[str, Callable[[], Any]]] = []
        not_init: list[str] = []
        unset: list[str] = []
        for name, (default, init, *_) in fields.items():
            if not init:
                not_init.append(name)
            if default is _REQUIRED:
                (required if init else unset).append(name)  # as dataclass: an init=False one stays unset
            elif default.__class__ is _Factory:
                factories.append((name, default.make))
            else:
                plain[name] = default
        # Every field in order: its plain default, else _REQUIRED (an argument or a factory fills it).
        self.template = {name: plain.get(name, _REQUIRED) for name in fields}
        self.required, self.factories = tuple(required), tuple(factories)
        self.not_init, self.unset = tuple(not_init), tuple(unset)
        positional = tuple(n for n, (_, init, kw, *_) in fields.items() if init and not kw)
        self.positional = self.names if positional == self.names else positional
        self.shown = _same(tuple(n for n, f in fields.items() if f[3]), self.names)
        self.compared = _same(tuple(n for n, f in fields.items() if f[5]), self.names)
        self.hashed = _same(tuple(n for n, f in fields.items() if (f[5] if f[4] is None else f[4])), self.compared)
        self.post_init = getattr(cls, "__post_init__", None)

    def default(self, name: str) -> object:
        found = self.template[name]
        if found is _REQUIRED:
            return next((_Factory(make) for n, make in self.factories if n == name), _REQUIRED)
        return found

    def field_options(self) -> dict[str, Options]:
        """The fields as `_Plan` takes them (a subclass's plan starts from its base's)."""
        return {
            name: (
                self.default(name),
                name not in self.not_init,
                name not in self.positional,
                name in self.shown,
                None if (name in self.hashed) == (name in self.compared) else name in self.hashed,
                name in self.compared,
            )
            for name in self.names
        }

    def unknown(self, given: dict[str, Any]) -> str:
        return sorted(set(given) - (set(self.names) - set(self.not_init)))[0]


def _same(names: tuple[str, ...], other: tuple[str, ...]) -> tuple[str, ...]:
    return other if names == other else names  # one tuple where two would be equal


_plans: dict[type, _Plan] = {}
_kw_only: dict[type, bool] = {}  # every record class: whether its fields are keyword-only by default


def _plan_of(cls: type) -> _Plan:
    plan = _plans.get(cls)
    if plan is None:
        plan = _plans[cls] = _Plan(cls, _collect(cls))
    return plan


# ---------------------------------------------------------------- the class body, read as dataclasses reads it

_MODULE_IDENTIFIER = re.compile(r"^(?:\s*(\w+)\s*\.)?\s*(\w+)")


def _names(annotation: object, cls: type, module: object, is_it: Callable[[object], bool]) -> bool:
    """Whether `annotation` is what `is_it` looks for, also as a string (`from __future__ import
    annotations`): read the way dataclasses reads one (its `_is_type`), names looked up in the
    class's module."""
    if is_it(annotation):
        return True
    if not isinstance(annotation, str) or (match := _MODULE_IDENTIFIER.match(annotation)) is None:
        return False
    namespace = vars(sys.modules[cls.__module__]) if cls.__module__ in sys.modules else {}
    module_name, name = match.groups()
    if module_name and namespace.get(module_name) is not module:
        return False
    return is_it(namespace.get(name))


def _is_classvar(annotation: object) -> bool:
    return annotation is typing.ClassVar or typing.get_origin(annotation) is typing.ClassVar


def _is_initvar(annotation: object) -> bool:
    return annotation is dataclasses.InitVar or type(annotation) is dataclasses.InitVar


def _is_kw_only(annotation: object) -> bool:
    return annotation is dataclasses.KW_ONLY


def _collect(cls: type) -> dict[str, tuple[object, bool, bool, bool, bool | None, bool]]:
    """The fields of `cls` and its bases, in dataclasses' order, from the class bodies (no `Field`
    object is made); once processed by dataclasses, from its fields."""
    fields: dict[str, tuple[object, bool, bool, bool, bool | None, bool]] = {}
    processed = cls.__dict__.get("__dataclass_fields__")
    if isinstance(processed, dict):
        return {f.name: _options(f, f.kw_only) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for base in cls.__mro__[-1:0:-1]:
        if base in _kw_only:
            fields.update(_plan_of(base).field_options())
        elif isinstance(base.__dict__.get("__dataclass_fields__"), dict):  # a plain dataclass
            fields.update({f.name: _options(f, f.kw_only) for f in dataclasses.fields(base)})  # type: ignore[arg-type]
    kw_only = _kw_only[cls]
    for name, annotation in inspect.get_annotations(cls).items():  # its own, as dataclasses reads them
        if _names(annotation, cls, dataclasses, _is_kw_only):
            kw_only = True
        elif _names(annotation, cls, dataclasses, _is_initvar):
            raise TypeError(f"{cls.__qualname__}.{name}: a record has no InitVar fields")
        elif not _names(annotation, cls, typing, _is_classvar):
            value = cls.__dict__.get(name, _MISSING)
            declared = value if isinstance(value, dataclasses.Field) else dataclasses.field(default=value)
            if declared.default is not _MISSING and declared.default.__class__.__hash__ is None:
                raise ValueError(
                    f"mutable default {type(declared.default)} for field {name} is not allowed: use default_factory"
                )
            fields[name] = _options(declared, kw_only if declared.kw_only is _MISSING else bool(declared.kw_only))
    return fields


def _options(f: dataclasses.Field[Any], kw_only: bool) -> tuple[object, bool, bool, bool, bool | None, bool]:
    if f.default is not _MISSING:
        default: object = f.default
    elif f.default_factory is not _MISSING:
        default = _Factory(f.default_factory)
    else:
        default = _REQUIRED
    return default, f.init, kw_only, f.repr, f.hash, f.compare


# ---------------------------------------------------------------- dataclasses' view, made when asked for

_processing = threading.RLock()  # processing a record processes its record bases first


class _FieldsOnDemand:
    """`__dataclass_fields__` of a record until something reads it: then dataclasses processes
    the class's fields (no method compiled) and its own dict replaces this one."""

    def __get__(self, instance: object, owner: type) -> dict[str, dataclasses.Field[Any]]:
        holder = next(k for k in owner.__mro__ if k.__dict__.get("__dataclass_fields__") is self)
        with _processing:
            if holder.__dict__.get("__dataclass_fields__") is self:
                _plan_of(holder)  # read from the class body before dataclasses changes it
                dataclasses.dataclass(init=False, repr=False, eq=False, kw_only=_kw_only[holder])(holder)
        return holder.__dict__["__dataclass_fields__"]


_FIELDS_ON_DEMAND = _FieldsOnDemand()


# ---------------------------------------------------------------- the shared methods


# Past the frozen __setattr__, one attribute at a time: the instance keeps its values inline, in
# the class's shared key table (filling its __dict__ in one update makes a dict of its own, 64-128
# bytes more for every record).
_set = object.__setattr__


def _init(self: object, *args: Any, **kwargs: Any) -> None:
    cls = self.__class__
    plan = _plans.get(cls) or _plan_of(cls)
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
            if values[name] is _REQUIRED:  # not given
                values[name] = make()
        for name in plan.unset:
            del values[name]
        if plan.required and _REQUIRED in values.values():  # one scan in C, by identity first
            missing = [name for name in plan.required if values[name] is _REQUIRED]
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
        plan = _plan_of(cls)
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
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _plan_of(self.__class__).shown)
    return f"{self.__class__.__qualname__}({shown})"


def _setattr(self: object, name: str, value: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: object, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _make_record(cls: type[T], kw_only: bool, frozen: bool = True, eq: bool = True, hot: bool = False) -> type[T]:
    own = dict(vars(cls))
    if not cls.__doc__:  # dataclass would build one from inspect.signature
        cls.__doc__ = cls.__name__
    _kw_only[cls] = kw_only
    if hot:  # built many times a tick: dataclass compiles its __init__ (~2 KiB more for the class)
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
    return _plan_of(cls).names if cls in _kw_only else tuple(f.name for f in dataclasses.fields(cls))


def replace(obj: T, /, **changes: Any) -> T:
    """`dataclasses.replace`, read from a record's plan (no Field object made); any dataclass else."""
    cls = obj.__class__
    if cls not in _kw_only:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    plan = _plan_of(cls)
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
    if cls not in _kw_only:
        return dataclasses.asdict(obj)  # type: ignore[call-overload]
    return {name: _as_value(getattr(obj, name)) for name in _plan_of(cls).names}


def _as_value(value: Any) -> Any:
    cls = value.__class__
    if cls in _kw_only:
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
    `hot=True` for a class built many times a tick (its `__init__` compiled, as dataclass does)."""
    if cls is None:
        return lambda c: _make_record(c, kw_only, frozen, eq, hot)
    return _make_record(cls, kw_only)
