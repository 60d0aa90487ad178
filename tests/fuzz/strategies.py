"""Hypothesis strategies for hostile webhook bodies: any JSON, and recorded real payloads with
parts replaced, removed or retyped (which reach far deeper into a parser than random JSON)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

DATA = Path(__file__).resolve().parents[1] / "data"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "0", "+", "text", "audio", "interactive", "button_reply", "read",
                      "failed", "messages", "statuses", "whatsapp_business_account", "\x00",
                      "🙂", "+48 600 100 200", "US.123", "-1", "1e309"])
)
any_json = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


def load_fixtures(channel: str) -> list[Any]:
    """The recorded payloads of one channel (``.json`` files)."""
    return [json.loads(p.read_text()) for p in sorted((DATA / channel).glob("*.json"))]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, fixtures: list[Any], max_mutations: int = 4) -> Any:
    """A recorded payload with up to ``max_mutations`` nodes replaced by any JSON or deleted."""
    doc = copy.deepcopy(draw(st.sampled_from(fixtures)))
    for _ in range(draw(st.integers(min_value=1, max_value=max_mutations))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            doc = draw(any_json)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(any_json)
    return doc
