"""The bytes ralph writes for a task file: its `Task` struct serialised by serde_json.

Owns: the canonical form of a task (`canonical_task`: ralph's field order, defaults written out,
null optional fields left out, custom field values as strings, the agent block as ralph's
`TaskAgent` writes itself), of a whole file (`dumps_queue_file`: two-space indent, no final
newline, as `serde_json::to_string_pretty` in ralph's queue/save.rs) and of a new timestamp
(`stamp_now`: UTC with nine fractional digits, as ralph's timeutil.rs).

Invariants: pure but for `stamp_now` (the clock). A task already in canonical form is returned
as the same object (files ralph wrote cost one check per task and are re-emitted byte for
byte). `custom_fields` keeps its key order (ralph's map is unordered, so any order is one ralph
could write). Strings are escaped as serde_json does, which orjson matches (`\\b \\t \\n \\f
\\r`, other controls as `\\u00xx`, everything else raw UTF-8).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from .._time import format_time, utcnow
from .rules import (
    AGENT_FIELDS,
    ALWAYS,
    DEFAULTS,
    FIELDS,
    PHASE_KEYS,
    PHASES,
    RUNNER_CLI_OPTIONS,
    canonical_runner,
    rust_trim,
)

_ALWAYS = frozenset(ALWAYS)


def _key_orders() -> frozenset[tuple[str, ...]]:
    """Every key tuple a canonical task can have: the always-written fields plus any subset of
    the optional ones, in ralph's order (4,096 tuples, built once)."""
    optional = [k for k in FIELDS if k not in _ALWAYS]
    out = set()
    for mask in range(1 << len(optional)):
        present = {k for i, k in enumerate(optional) if mask >> i & 1}
        out.add(tuple(k for k in FIELDS if k in _ALWAYS or k in present))
    return frozenset(out)


CANONICAL_KEYS = _key_orders()


def stamp_now() -> str:
    """Now as ralph writes a timestamp (timeutil.rs): UTC, nine fractional digits, `Z`."""
    return format_time(utcnow())[:-1] + "000Z"


def ryu_text(x: float) -> str:
    """A float as serde_json prints it (Rust's ryu): `1.0`, `1e16`, `0.00001`, `1.5e-7`."""
    if x != x or x in (float("inf"), float("-inf")):
        return "null"
    if x == 0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    sign, digits, exp = Decimal(repr(x)).normalize().as_tuple()
    d = "".join(map(str, digits))
    point = len(d) + int(exp)  # the decimal point sits after `point` digits
    if int(exp) >= 0 and point <= 16:
        text = d + "0" * int(exp) + ".0"
    elif 0 < point <= 16:
        text = d[:point] + "." + d[point:]
    elif -5 < point <= 0:
        text = "0." + "0" * -point + d
    else:
        text = (d[0] + ("." + d[1:] if len(d) > 1 else "")) + f"e{point - 1}"
    return ("-" if sign else "") + text


def scalar_text(v: Any) -> str:
    """A custom field value as ralph keeps it: numbers and booleans become their JSON text."""
    if type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is int and -(2**63) <= v < 2**64:
        return str(v)
    return ryu_text(float(v))  # a float, or an integer serde_json reads as a float


def _canonical_phase(phase: dict[str, Any]) -> dict[str, Any]:
    out = {k: phase[k] for k in PHASE_KEYS if phase.get(k) is not None}
    if "runner" in out:
        out["runner"] = canonical_runner(out["runner"])
    if "model" in out:
        out["model"] = rust_trim(out["model"])
    return out


def canonical_agent(agent: dict[str, Any]) -> dict[str, Any]:
    """A task's `agent` block as ralph writes it (TaskAgent: declared order, nulls and a
    `default` model_effort left out, runner_cli with all six options, runner/model trimmed)."""
    out: dict[str, Any] = {}
    for key in AGENT_FIELDS:
        v = agent.get(key)
        if v is None or (key == "model_effort" and v == "default"):
            continue
        if key == "runner":
            v = canonical_runner(v)
        elif key == "model":
            v = rust_trim(v)
        elif key == "runner_cli":
            v = {k: v.get(k) for k in RUNNER_CLI_OPTIONS}
        elif key == "phase_overrides":
            v = {name: _canonical_phase(v[name]) for name in PHASES if v.get(name) is not None}
        out[key] = v
    return out


def canonical_task(t: dict[str, Any]) -> dict[str, Any]:
    """`t` as ralph would write it; `t` itself when it already is (the common case)."""
    if (
        tuple(t) in CANONICAL_KEYS
        and None not in t.values()
        and all(type(v) is str for v in t["custom_fields"].values())
        and ("agent" not in t or _is_canonical_agent(t["agent"]))
    ):
        return t
    out: dict[str, Any] = {}
    for key in FIELDS:
        v = t.get(key, DEFAULTS.get(key) if key in _ALWAYS else None)
        if key == "custom_fields":
            v = {k: scalar_text(x) for k, x in (v or {}).items()}
        elif key == "agent" and v is not None:
            v = canonical_agent(v)
        elif isinstance(v, list):
            v = list(v)
        if v is not None:
            out[key] = v
    return out


def _is_canonical_agent(agent: dict[str, Any]) -> bool:
    """Equal to its canonical form, key order included (dicts compare equal in any order)."""
    canon = canonical_agent(agent)
    return (
        canon == agent
        and list(canon) == list(agent)
        and all(list(canon[k]) == list(agent[k]) for k in canon if isinstance(canon[k], dict))
        and all(
            list(p) == list(agent["phase_overrides"][n])
            for n, p in canon.get("phase_overrides", {}).items()
        )
    )


def canonicalize(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace, in place, every task of `tasks` that is not in ralph's form; return `tasks`."""
    for i, t in enumerate(tasks):
        c = canonical_task(t)
        if c is not t:
            tasks[i] = c
    return tasks


def dumps_queue_file(doc: dict[str, Any]) -> bytes:
    """A queue or done document as ralph's queue/save.rs writes it (tasks already canonical)."""
    ordered = {"version": doc["version"], "tasks": doc.get("tasks", [])}
    try:
        return orjson.dumps(ordered, option=orjson.OPT_INDENT_2)
    except TypeError:  # e.g. an integer beyond 64 bits: the stdlib writes the same layout
        return json.dumps(ordered, indent=2, ensure_ascii=False).encode("utf-8")
