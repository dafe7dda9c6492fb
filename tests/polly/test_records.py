"""`@record` behaves as `@dataclass(frozen=True)`: each case is checked against a real frozen dataclass
with the same fields, and the saving it exists for is measured."""

from __future__ import annotations

import dataclasses
import gc
import pickle
import tracemalloc
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any

import pytest

from polly import records
from polly.records import record


def pair(body: str, *, kw_only: bool = False) -> tuple[type, type]:
    """The same class body made by `@record` and by `@dataclass(frozen=True)`."""
    made: list[type] = []
    for decorate in (record(kw_only=kw_only), dataclass(frozen=True, kw_only=kw_only)):
        namespace: dict[str, Any] = {"field": field}
        exec(f"class Point:\n{body}", namespace)
        made.append(decorate(namespace["Point"]))
    return made[0], made[1]


@record
class Pickled:
    a: int
    b: tuple[int, ...] = ()


BODY = """
    x: int
    y: int = 2
    label: str = field(default="a", compare=False)
    secret: str = field(default="s", repr=False)
    hashed_only_by_compare: list = field(default_factory=list, hash=False)
"""


def test_equality_hash_and_repr_match_a_frozen_dataclass():
    light, heavy = pair(BODY)
    for args in [(1,), (1, 3), (2, 2)]:
        a, b = light(*args), heavy(*args)
        assert repr(a) == repr(b)
        assert hash(a) == hash(b)
        assert (a == light(*args)) and (b == heavy(*args))
    assert light(1, label="x") == light(1, label="y")  # compare=False: not compared
    assert light(1) != light(2) and light(1) != heavy(1)  # another class is never equal
    assert light(1).__eq__(heavy(1)) is NotImplemented
    assert "secret" not in repr(light(1))
    assert {light(1), light(1, label="z")} == {light(1)}  # equal records hash alike


def test_frozen_fields_replace_and_pickle():
    light, _ = pair(BODY)
    point = light(1)
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'x'"):
        point.x = 5
    with pytest.raises(FrozenInstanceError, match="cannot delete field 'y'"):
        del point.y
    moved = dataclasses.replace(point, x=7)
    assert (moved.x, moved.y, point.x) == (7, 2, 1)
    assert dataclasses.asdict(point)["hashed_only_by_compare"] == []
    assert pickle.loads(pickle.dumps(Pickled(1, (2,)))) == Pickled(1, (2,))
    assert dataclasses.is_dataclass(point) and [f.name for f in dataclasses.fields(light)][:2] == ["x", "y"]


def test_keyword_only_subclasses_and_a_class_own_methods():
    light, heavy = pair("    x: int\n    y: int = 0\n", kw_only=True)
    with pytest.raises(TypeError):
        light(1)
    assert light(x=1) == light(x=1, y=0) and repr(light(x=1)) == repr(heavy(x=1))

    @record
    class Base:
        a: int

    @record
    class Child(Base):
        b: int = 0

        def __repr__(self) -> str:
            return "mine"

    assert Child(1, 2) == Child(1, 2) and Child(1, 2) != Base(1)
    assert repr(Child(1)) == "mine" and repr(Base(1)).endswith(".Base(a=1)")  # the qualified name, as dataclass

    @record
    class OwnEquality:
        a: int

        def __eq__(self, other: object) -> bool:  # defining __eq__ leaves __hash__ None: the record hashes
            return True

    assert OwnEquality(1) == OwnEquality(2) and hash(OwnEquality(1)) == hash((1,))


def test_building_a_record_takes_and_refuses_what_a_dataclass_init_would():
    light, heavy = pair(
        BODY
        + "    derived: int = field(default=9, init=False)\n    made: list = field(default_factory=list, init=False)\n"
    )
    for cls in (light, heavy):
        point = cls(1, 3, "b", secret="t")
        assert (point.x, point.y, point.label, point.secret, point.derived, point.made) == (1, 3, "b", "t", 9, [])
        assert cls(1).hashed_only_by_compare is not cls(1).hashed_only_by_compare  # a fresh default each
        assert cls(1).made is not cls(1).made
    for call, message in [
        (lambda cls: cls(), "missing 1 required"),
        (lambda cls: cls(1, 2, "a", "s", [], 6), "positional arguments"),
        (lambda cls: cls(1, x=2), "multiple values for argument 'x'"),
        (lambda cls: cls(1, colour=2), "unexpected keyword argument 'colour'"),
        (lambda cls: cls(1, derived=2), "unexpected keyword argument 'derived'"),
    ]:
        for cls in (light, heavy):
            with pytest.raises(TypeError, match=message):
                call(cls)

    @record
    class Checked:
        a: int
        seen: list = field(default_factory=list)

        def __post_init__(self) -> None:
            self.seen.append(self.a)

    assert Checked(4).seen == [4]


def test_a_record_refers_to_itself_without_recursing():
    @record
    class Node:
        children: list

    node = Node([])
    node.children.append(node)
    assert repr(node).endswith(".Node(children=[...])")


def test_a_record_costs_far_less_to_define_than_a_frozen_dataclass():
    def cost(decorate) -> int:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = []
            for i in range(40):
                namespace: dict[str, Any] = {}
                exec(f"class C{i}:\n" + "".join(f"    f{j}: int = {j}\n" for j in range(6)), namespace)
                kept.append(decorate(namespace[f"C{i}"]))
            gc.collect()
            return tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()

    cost(record), cost(dataclass(frozen=True))  # warm caches of both
    light, heavy = cost(record), cost(dataclass(frozen=True))
    assert light < 0.3 * heavy, (light, heavy)  # no method compiled, no Field made until asked for


def test_fields_are_processed_by_dataclasses_only_when_asked_for():
    @record
    class Lazy:
        a: int
        b: list = field(default_factory=list, repr=False)

    assert not isinstance(Lazy.__dict__["__dataclass_fields__"], dict)  # no Field made yet
    made = Lazy(1)
    assert (made.a, made.b, repr(made)) == (1, [], repr(made)) and "b=" not in repr(made)
    assert not isinstance(Lazy.__dict__["__dataclass_fields__"], dict)  # building, comparing, printing: still none
    assert dataclasses.is_dataclass(made) and [f.name for f in dataclasses.fields(Lazy)] == ["a", "b"]
    assert isinstance(Lazy.__dict__["__dataclass_fields__"], dict)
    assert dataclasses.replace(made, a=2) == Lazy(2) and Lazy(3).b == []  # the same plan after processing

    @record
    class Child(Lazy):  # its base processed, itself not yet
        c: int = 0

    assert Child(1, [2], 3).c == 3 and dataclasses.asdict(Child(1)) == {"a": 1, "b": [], "c": 0}


ANNOTATED = """
from __future__ import annotations
import dataclasses, typing
from dataclasses import KW_ONLY, InitVar, field
from typing import ClassVar
from polly.records import record

@record
class Marked:
    a: int
    kind: ClassVar[str] = "shared"
    also: typing.ClassVar[int] = 3
    _: KW_ONLY
    b: int = 2

@dataclasses.dataclass
class Plain:
    p: int = 0

@record
class OnPlain(Plain):
    q: int = 1
"""


def test_class_variables_keyword_only_markers_and_plain_dataclass_bases_read_as_dataclasses_reads_them(tmp_path):
    import importlib
    import sys

    (tmp_path / "annotated_records.py").write_text(ANNOTATED)
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("annotated_records")
    finally:
        sys.path.remove(str(tmp_path))
    marked = module.Marked(1, b=5)
    assert (marked.a, marked.b, module.Marked.kind) == (1, 5, "shared")
    with pytest.raises(TypeError):
        module.Marked(1, 5)  # b is keyword-only after the KW_ONLY marker
    assert module.OnPlain(4, 5) == module.OnPlain(p=4, q=5) and repr(module.OnPlain()).endswith("OnPlain(p=0, q=1)")
    assert [f.name for f in dataclasses.fields(module.Marked)] == ["a", "b"]
    mutable = record(type("Mutable", (), {"__annotations__": {"x": "list"}, "x": [], "__module__": __name__}))
    with pytest.raises(ValueError, match="mutable default"):  # at its first record (the plan is read then)
        mutable()


EVERY_RECORD = """
import dataclasses, importlib, json, pkgutil, sys
import polly
from polly import record_plan

for info in pkgutil.walk_packages(polly.__path__, "polly."):
    importlib.import_module(info.name)
checked = processed_first = 0
for cls in list(record_plan.kw_only_default):
    if isinstance(cls.__dict__["__dataclass_fields__"], dict):
        processed_first += 1  # already processed at import (fields() at module level): read from its fields
        continue
    body = record_plan.Plan(cls, record_plan.collect(cls))  # read from the class body
    processed = {f.name: record_plan.options(f, f.kw_only) for f in dataclasses.fields(cls)}
    by_dataclasses = record_plan.Plan(cls, processed)
    for part in record_plan.Plan.__slots__:
        assert getattr(body, part) == getattr(by_dataclasses, part), (cls, part)
    checked += 1
print(json.dumps({"checked": checked, "processed_first": processed_first}))
"""


def test_every_record_in_polly_reads_its_fields_as_dataclasses_does(tmp_path):
    """Each record's plan from its class body against dataclasses' own processing of the same class."""
    from tests.child_process import child_json

    found = child_json(EVERY_RECORD, tmp_path)
    assert found["checked"] >= 60, found


def test_a_changeable_record_behaves_as_a_plain_dataclass():
    made: list[type] = []
    for decorate in (record(frozen=False), dataclass):
        namespace: dict[str, Any] = {"field": field}
        exec(f"class Point:\n{BODY}", namespace)
        made.append(decorate(namespace["Point"]))
    light, heavy = made
    a, b = light(1), heavy(1)
    a.x, b.x = 5, 5  # assignable
    assert repr(a) == repr(b) and a == light(5) and a != heavy(5)
    assert light.__hash__ is None and heavy.__hash__ is None  # compared by value: unhashable, as dataclass
    assert dataclasses.replace(a, y=9).y == 9

    @record(frozen=False, eq=False)
    class ByIdentity:
        a: int

    one = ByIdentity(1)
    assert one != ByIdentity(1) and one == one and {one: 1}[one] == 1


def test_replace_asdict_and_field_names_from_the_plan_make_no_field_objects():

    @record
    class Inner:
        a: int
        tags: tuple[str, ...] = ()

    @record(kw_only=True)
    class Outer:
        inner: Inner
        items: list = field(default_factory=list)
        by_name: dict = field(default_factory=dict)
        fixed: int = field(default=7, init=False)

    made = Outer(inner=Inner(1, ("x",)), items=[Inner(2)], by_name={"k": Inner(3)})
    nested = {"items": [{"a": 2, "tags": ()}], "by_name": {"k": {"a": 3, "tags": ()}}}
    assert records.asdict(made) == {"inner": {"a": 1, "tags": ("x",)}, **nested, "fixed": 7}
    moved = records.replace(made, inner=Inner(5))
    assert moved.inner == Inner(5) and moved.items is made.items and moved.fixed == 7
    with pytest.raises(ValueError, match="init=False"):
        records.replace(made, fixed=1)
    assert records.field_names(Outer) == ("inner", "items", "by_name", "fixed")
    assert not isinstance(Outer.__dict__["__dataclass_fields__"], dict)  # none of the three made Field objects
    assert not isinstance(Inner.__dict__["__dataclass_fields__"], dict)
    # ... and they agree with dataclasses' own
    assert records.asdict(made) == dataclasses.asdict(made) and dataclasses.replace(made, inner=Inner(5)) == moved
    assert records.field_names(Outer) == tuple(f.name for f in dataclasses.fields(Outer))

    @dataclass
    class Plain:
        p: list = field(default_factory=list)

    assert records.asdict(Plain([1])) == {"p": [1]} and records.replace(Plain(), p=[2]) == Plain([2])


def test_a_hot_record_has_an_init_compiled_for_it_and_the_rest_shared():
    @record(hot=True)
    class Hot:
        a: int
        b: int = 2

    assert Hot.__init__.__qualname__.endswith("Hot.__init__") and Hot.__init__.__code__.co_filename == "<string>"
    assert Hot(1) == Hot(1, 2) == Hot(b=2, a=1) and repr(Hot(1)).endswith("Hot(a=1, b=2)")
    assert hash(Hot(1)) == hash((1, 2)) and vars(Hot(1, 3)) == {"a": 1, "b": 3}
    with pytest.raises(FrozenInstanceError):
        Hot(1).a = 3
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'a'"):
        Hot()
    with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
        Hot(1, c=3)
    assert records.replace(Hot(1), b=5) == Hot(1, 5) and dataclasses.asdict(Hot(1)) == {"a": 1, "b": 2}
    assert [f.name for f in dataclasses.fields(Hot)] == ["a", "b"]

    @record(hot=True)
    class HotWithFactory:  # more than plain defaults: dataclasses' own __init__
        items: list = field(default_factory=list)

    assert HotWithFactory().items == [] and HotWithFactory().items is not HotWithFactory().items
    with pytest.raises(FrozenInstanceError):
        HotWithFactory().items = [1]


def test_a_value_whose_equality_cannot_be_a_bool_is_stored_as_given():
    class Ambiguous:
        def __eq__(self, other: object) -> bool:
            raise ValueError("the truth value is ambiguous")  # as a numpy array's

        __hash__ = object.__hash__

    @record
    class Holder:
        data: object
        note: str = ""

    held = Ambiguous()
    assert Holder(held).data is held and Holder(data=held, note="x").data is held
