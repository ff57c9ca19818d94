"""Check JSON objects against async-stripe 1.0.0-rc.10's types (from required_fields.json).

`check_tree(node)` walks any JSON value (an API response, an error body, an event, a list)
and, for every object whose `object` names a type async-stripe parses (`objects` in the
JSON file), checks it against that Rust type, recursively through nested structs:

* a required field (builder default `None`, i.e. not `Option<...>`) must be present and
  non-null;
* a present, non-null value must have the JSON kind of its Rust type (integer, bool,
  string, list, map, struct, expandable id-or-object);
* a closed string enum (one without an `Unknown(String)` variant) must hold a known value;
* an event's `data.object` is checked as the type async-stripe's `EventObject` gives its
  `type` (and the type must be one async-stripe knows).

Returns the list of problems (empty: async-stripe parses everything) and fills `seen` with
the Rust types checked.
"""

from __future__ import annotations

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
_SPEC: dict | None = None

INTS = {"i64", "u64", "i32", "u32", "i16", "u16", "i8", "u8", "Timestamp", "usize"}
FLOATS = {"f64", "f32"}
STRINGS = {"String", "Currency", "str", "&str", "ApiVersion"}


def spec() -> dict:
    global _SPEC
    if _SPEC is None:
        with open(os.path.join(HERE, "required_fields.json"), encoding="utf-8") as f:
            _SPEC = json.load(f)
    return _SPEC


def _generic(t: str, name: str) -> str | None:
    if t.startswith(name + "<") and t.endswith(">"):
        return t[len(name) + 1:-1]
    return None


def _split_args(t: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for c in t:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    out.append(cur)
    return out


def check_value(value, rtype: str, path: str, errs: list, seen: set) -> None:
    sp = spec()
    inner = _generic(rtype, "Option")
    if inner is not None:
        if value is None:
            return
        rtype = inner
    if value is None:
        errs.append(f"{path}: null, but async-stripe needs {rtype}")
        return
    for wrapper in ("Box",):
        inner = _generic(rtype, wrapper)
        if inner is not None:
            rtype = inner
    inner = _generic(rtype, "Expandable")
    if inner is not None:
        if isinstance(value, str):
            return
        rtype = inner
    inner = _generic(rtype, "Vec")
    if inner is not None:
        if not isinstance(value, list):
            errs.append(f"{path}: expected a list ({rtype}), got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            check_value(v, inner, f"{path}[{i}]", errs, seen)
        return
    inner = _generic(rtype, "List")
    if inner is not None:
        if not isinstance(value, dict):
            errs.append(f"{path}: expected a list object, got {type(value).__name__}")
            return
        for key, kind in (("data", list), ("has_more", bool), ("url", str)):
            if not isinstance(value.get(key), kind):
                errs.append(f"{path}.{key}: missing or wrong kind (List<{inner}>)")
        for i, v in enumerate(value.get("data") or []):
            check_value(v, inner, f"{path}.data[{i}]", errs, seen)
        return
    inner = _generic(rtype, "HashMap")
    if inner is not None:
        if not isinstance(value, dict):
            errs.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        args = _split_args(inner)
        if len(args) == 2 and args[1] == "String":
            for k, v in value.items():
                if not isinstance(v, str):
                    errs.append(f"{path}.{k}: map value must be a string")
        return
    if rtype in INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            errs.append(f"{path}: expected an integer ({rtype}), got {value!r}")
        elif rtype.startswith("u") and value < 0:
            errs.append(f"{path}: expected a non-negative integer ({rtype}), got {value}")
        return
    if rtype in FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errs.append(f"{path}: expected a number ({rtype}), got {value!r}")
        return
    if rtype == "bool":
        if not isinstance(value, bool):
            errs.append(f"{path}: expected a bool, got {value!r}")
        return
    if rtype in STRINGS or (rtype.endswith("Id") and rtype not in sp["types"]):
        if not isinstance(value, str):
            errs.append(f"{path}: expected a string ({rtype}), got {value!r}")
        return
    if rtype in ("Value", "EventObject"):
        return
    enum = sp["enums"].get(rtype)
    if enum is not None:
        seen.add(rtype)
        if enum["kind"] == "string":
            if not isinstance(value, str):
                errs.append(f"{path}: expected a string ({rtype}), got {value!r}")
            elif not enum["open"] and value not in enum["values"]:
                errs.append(f"{path}: {value!r} is not one of {rtype} {enum['values']}")
            return
        if not isinstance(value, dict):
            errs.append(f"{path}: expected an object ({rtype}), got {value!r}")
            return
        variant = enum["variants"].get(value.get("object"))
        if variant is None:
            errs.append(f"{path}: object {value.get('object')!r} is not a variant of {rtype}")
        elif variant in sp["types"]:
            check_value(value, variant, path, errs, seen)
        return
    struct = sp["types"].get(rtype)
    if struct is None:
        return  # a type the JSON file does not describe (never required by the stand-in)
    if not isinstance(value, dict):
        errs.append(f"{path}: expected an object ({rtype}), got {value!r}")
        return
    seen.add(rtype)
    for name, field in struct["fields"].items():
        if name not in value or value[name] is None:
            if field["required"]:
                errs.append(f"{path}.{name}: missing, required by {rtype} ({field['type']})")
            continue
        if rtype == "NotificationEventData" and name == "object":
            continue  # checked by check_event with the event's type
        check_value(value[name], field["type"], f"{path}.{name}", errs, seen)


def check_event(evt: dict, path: str, errs: list, seen: set) -> None:
    sp = spec()
    check_value(evt, "Event", path, errs, seen)
    typ = evt.get("type")
    target = sp["events"].get(typ)
    if target is None:
        errs.append(f"{path}: event type {typ!r} is unknown to async-stripe rc.10")
        return
    obj = (evt.get("data") or {}).get("object")
    check_value(obj, target, f"{path}.data.object", errs, seen)


def check_tree(node, path: str = "$", seen: set | None = None) -> list[str]:
    """Check every Stripe object found anywhere in `node`; returns the problems."""
    seen = seen if seen is not None else set()
    errs: list[str] = []
    objects = spec()["objects"]

    def walk(n, p):
        if isinstance(n, list):
            for i, v in enumerate(n):
                walk(v, f"{p}[{i}]")
            return
        if not isinstance(n, dict):
            return
        kind = n.get("object")
        if kind == "event":
            check_event(n, p, errs, seen)
        elif isinstance(kind, str) and kind in objects and not n.get("deleted"):
            check_value(n, objects[kind], p, errs, seen)
        for k, v in n.items():
            walk(v, f"{p}.{k}")

    walk(node, path)
    return errs
