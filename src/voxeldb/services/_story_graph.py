"""A story's branching data as a graph: the shape, its validation, and its conditions.

The canonical shape (docs/playing.md)::

    {"start": "gate",
     "nodes": {
       "gate": {"text": "A gate rises from the waves.",
                "options": [
                  {"id": "open", "text": "Open it", "to": "hall",
                   "conditions": {"stats": {"strength": {"min": 12}},
                                  "items": {"key": 1},
                                  "relationships": {"<character id>": {"min": 10}},
                                  "level": {"min": 2}},
                   "effects": {"stats": {"strength": 1}, "items": {"key": -1, "gold": 5},
                               "affinity": {"<character id>": 5}, "experience": 50}},
                  "flee"]},
       "hall": {"text": "A hall of echoes.", "options": []}}}

An option given as a plain string ``"flee"`` is ``{"id": "flee", "text": "flee", "to":
"flee"}``. A node with no options is an ending. The sample data's flat form, node ids at the
top level (``{"start": {"text": ..., "options": [...]}, ...}``) is read as ``{"start":
"start", "nodes": <that>}``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import Field, StrictFloat, StrictInt, field_validator, model_validator

from voxeldb.errors import ValidationError
from voxeldb.services._common import validated
from voxeldb.services._validation import _Strict, check_json_object

__all__ = [
    "Conditions",
    "Effects",
    "Node",
    "Option",
    "StoryGraph",
    "canonical",
    "parse_graph",
    "parse_node",
]

Number = StrictInt | StrictFloat
MAX_NODES = 10_000
MAX_OPTIONS = 100
_ID = Field(min_length=1, max_length=100)


class Range(_Strict):
    min: Number | None = None
    max: Number | None = None

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        parts = [f">= {self.min}"] if self.min is not None else []
        parts += [f"<= {self.max}"] if self.max is not None else []
        return " and ".join(parts) or "anything"


def _character_keys(v: dict[str, Any]) -> dict[str, Any]:
    for key in v:
        try:
            uuid.UUID(key)
        except ValueError:
            raise ValueError(f"{key!r} is not a character id") from None
    return v


class Conditions(_Strict):
    stats: dict[str, Range] = Field(default_factory=dict)
    items: dict[str, StrictInt] = Field(default_factory=dict)
    """At least this many of each item (by item name)."""
    relationships: dict[str, Range] = Field(default_factory=dict)
    """The affinity of the chooser towards each character (by id), 0 when none."""
    level: Range | None = None

    @field_validator("relationships")
    @classmethod
    def _keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _character_keys(v)


class Effects(_Strict):
    stats: dict[str, Number] = Field(default_factory=dict)
    """Added to the chooser's stats (a stat it lacks starts at 0)."""
    items: dict[str, StrictInt] = Field(default_factory=dict)
    """Given (positive) or taken (negative) by item name; taking more than the chooser
    holds makes the option unavailable."""
    affinity: dict[str, Number] = Field(default_factory=dict)
    """Added to the chooser's affinity towards each character (by id)."""
    experience: StrictInt = Field(default=0, ge=0, le=10**9)

    @field_validator("affinity")
    @classmethod
    def _keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _character_keys(v)


class Option(_Strict):
    id: str = _ID
    text: str = Field(min_length=1, max_length=1000)
    to: str = _ID
    conditions: Conditions = Field(default_factory=Conditions)
    effects: Effects = Field(default_factory=Effects)


class Node(_Strict):
    text: str = Field(default="", max_length=10_000)
    options: list[Option] = Field(default_factory=list, max_length=MAX_OPTIONS)

    @field_validator("options", mode="before")
    @classmethod
    def _short_options(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"id": o, "text": o, "to": o} if isinstance(o, str) else o for o in v]
        return v

    @model_validator(mode="after")
    def _unique_ids(self) -> Node:
        seen: set[str] = set()
        for option in self.options:
            if option.id in seen:
                raise ValueError(f"two options have the id {option.id!r}")
            seen.add(option.id)
        return self

    def option(self, key: str) -> Option | None:
        for option in self.options:
            if option.id == key:
                return option
        for option in self.options:
            if option.text == key:
                return option
        return None


class StoryGraph(_Strict):
    start: str = _ID
    nodes: dict[str, Node] = Field(min_length=1, max_length=MAX_NODES)

    @model_validator(mode="after")
    def _links(self) -> StoryGraph:
        if self.start not in self.nodes:
            raise ValueError(f"the start node {self.start!r} is not among the nodes")
        for node_id, node in self.nodes.items():
            if not 1 <= len(node_id) <= 100:
                raise ValueError(f"node id {node_id!r} must be 1 to 100 characters")
            for option in node.options:
                if option.to not in self.nodes:
                    raise ValueError(
                        f"option {option.id!r} of node {node_id!r} leads to {option.to!r}, "
                        "which is not a node"
                    )
        return self


def canonical(data: Any, field: str = "branching_data", *, stored: bool = False) -> dict[str, Any]:
    """``data`` in the canonical ``{"start", "nodes"}`` shape (the flat form converted).

    ``stored``: ``data`` was read from the database, so it is JSON already (only its shape
    is checked, not every value again)."""
    if stored and not isinstance(data, dict):
        raise ValidationError(f"{field} must be a dict", field=field)
    if not stored:
        try:
            check_json_object(data, field)
        except ValueError as exc:
            raise ValidationError(str(exc), field=field) from None
    graph: dict[str, Any] = data
    if isinstance(graph.get("nodes"), dict) and isinstance(graph.get("start"), str):
        return graph
    return {"start": "start", "nodes": graph}


def parse_graph(data: Any, field: str = "branching_data") -> StoryGraph:
    """The validated graph of ``data``; a ValidationError naming ``field`` and where."""
    graph = canonical(data, field)
    try:
        return validated(StoryGraph, **graph)
    except ValidationError as exc:
        raise ValidationError(f"{field}: {exc}", field=field) from None


def parse_node(data: Any, node_id: str, field: str = "branching_data") -> tuple[Node, set[str]]:
    """Only the node ``node_id`` of ``data`` (validated), and the ids of all nodes: what
    playing one step needs, without validating the whole graph again."""
    graph = canonical(data, field, stored=True)
    nodes = graph["nodes"]
    if node_id not in nodes:
        raise ValidationError(
            f"{field}: the story has no node {node_id!r} (was its graph changed?)", field=field
        )
    raw = nodes[node_id]
    if not isinstance(raw, dict):
        raise ValidationError(f"{field}: node {node_id!r} is not an object", field=field)
    return _node(node_id, raw, field), set(nodes)


_NODES: dict[tuple[str, str], tuple[dict[str, Any], Node]] = {}
_NODES_MAX = 1024


def _node(node_id: str, raw: dict[str, Any], field: str) -> Node:
    """``raw`` validated as a Node; remembered, since a story's nodes are read on every step
    (the memo is keyed by the node's content: an edited node is validated again)."""
    key = (node_id, json.dumps(raw, sort_keys=True, separators=(",", ":")))
    hit = _NODES.get(key)
    if hit is not None:
        return hit[1]
    try:
        node = validated(Node, **raw)
    except ValidationError as exc:
        raise ValidationError(f"{field}: node {node_id!r}: {exc}", field=field) from None
    if len(_NODES) >= _NODES_MAX:
        _NODES.clear()
    _NODES[key] = (raw, node)
    return node
