"""The plan of a record class (`polly.records`): its fields read from the class body as
`dataclasses` reads them (annotations of the class and its bases in order, ClassVar and the
KW_ONLY marker skipped, defaults and `field()` options), without making a `Field` object; once
`dataclasses` has processed the class, from its fields."""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from collections.abc import Callable
from typing import Any


class Factory:
    """A field's `default_factory`, told apart from a default value while fields are collected."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


REQUIRED = object()
MISSING = dataclasses.MISSING
Options = tuple[object, bool, bool, bool, bool | None, bool]  # default, init, kw_only, repr, hash, compare


class Plan:
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
            if default is REQUIRED:
                (required if init else unset).append(name)  # as dataclass: an init=False one stays unset
            elif default.__class__ is Factory:
                factories.append((name, default.make))
            else:
                plain[name] = default
        # Every field in order: its plain default, else REQUIRED (an argument or a factory fills it).
        self.template = {name: plain.get(name, REQUIRED) for name in fields}
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
        if found is REQUIRED:
            return next((Factory(make) for n, make in self.factories if n == name), REQUIRED)
        return found

    def field_options(self) -> dict[str, Options]:
        """The fields as `Plan` takes them (a subclass's plan starts from its base's)."""
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


plans: dict[type, Plan] = {}
kw_only_default: dict[type, bool] = {}  # every record class: whether its fields are keyword-only by default


def plan_of(cls: type) -> Plan:
    plan = plans.get(cls)
    if plan is None:
        plan = plans[cls] = Plan(cls, collect(cls))
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


def collect(cls: type) -> dict[str, tuple[object, bool, bool, bool, bool | None, bool]]:
    """The fields of `cls` and its bases, in dataclasses' order, from the class bodies (no `Field`
    object is made); once processed by dataclasses, from its fields."""
    fields: dict[str, tuple[object, bool, bool, bool, bool | None, bool]] = {}
    processed = cls.__dict__.get("__dataclass_fields__")
    if isinstance(processed, dict):
        return {f.name: options(f, f.kw_only) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for base in cls.__mro__[-1:0:-1]:
        if base in kw_only_default:
            fields.update(plan_of(base).field_options())
        elif isinstance(base.__dict__.get("__dataclass_fields__"), dict):  # a plain dataclass
            fields.update({f.name: options(f, f.kw_only) for f in dataclasses.fields(base)})  # type: ignore[arg-type]
    kw_only = kw_only_default[cls]
    for name, annotation in inspect.get_annotations(cls).items():  # its own, as dataclasses reads them
        if _names(annotation, cls, dataclasses, _is_kw_only):
            kw_only = True
        elif _names(annotation, cls, dataclasses, _is_initvar):
            raise TypeError(f"{cls.__qualname__}.{name}: a record has no InitVar fields")
        elif not _names(annotation, cls, typing, _is_classvar):
            value = cls.__dict__.get(name, MISSING)
            declared = value if isinstance(value, dataclasses.Field) else dataclasses.field(default=value)
            if declared.default is not MISSING and declared.default.__class__.__hash__ is None:
                raise ValueError(
                    f"mutable default {type(declared.default)} for field {name} is not allowed: use default_factory"
                )
            fields[name] = options(declared, kw_only if declared.kw_only is MISSING else bool(declared.kw_only))
    return fields


def options(f: dataclasses.Field[Any], kw_only: bool) -> tuple[object, bool, bool, bool, bool | None, bool]:
    if f.default is not MISSING:
        default: object = f.default
    elif f.default_factory is not MISSING:
        default = Factory(f.default_factory)
    else:
        default = REQUIRED
    return default, f.init, kw_only, f.repr, f.hash, f.compare
