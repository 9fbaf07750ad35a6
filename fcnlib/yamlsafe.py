"""Reading a recipe's YAML within limits: size, nesting depth, alias expansion, key types.

``yaml.SafeLoader`` runs no code but trusts the shape of the text: 5000 nested brackets overflow
its recursive composer, and a few hundred bytes of aliases (``b: [*a, *a, ...]`` repeated) stand
for gigabytes once anything walks the result. :func:`load_recipe_yaml` reads at most
:data:`MAX_BYTES`, refuses nesting deeper than :data:`MAX_DEPTH` from the event stream (the
parser is not recursive), counts the nodes with every alias expanded before constructing
anything (at most :data:`MAX_NODES`), refuses a setting given twice, keys that are not text and
text holding a NUL character, and supports YAML merge keys (``<<: *base``; the mapping's own
keys win over merged ones). Top-level keys that start with a dot (``.base: &base {...}``, as in
GitLab CI) hold anchors only and are dropped.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from .errors import FcnlibError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "RecipeYamlError", "load_recipe_yaml"]

#: Largest recipe file read (the shipped ones are under 2 KB).
MAX_BYTES = 1 << 20
#: Deepest nesting of lists and mappings (a recipe is flat: one level, two with list values).
MAX_DEPTH = 20
#: Most YAML nodes, every alias expanded (a recipe has a few hundred at most).
MAX_NODES = 100_000
_MERGE = "tag:yaml.org,2002:merge"


class RecipeYamlError(FcnlibError, ValueError):
    """A recipe file whose YAML is over a limit or not a plain mapping of settings."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (YAML would keep the last silently)."""


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE:
            continue  # merged keys may be overridden by the mapping's own
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} (line {key_node.start_mark.line + 1}) is not a setting name: "
                "keys must be text",
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"setting {key!r} is given twice (line {key_node.start_mark.line + 1})"
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)  # flattens merge keys, own keys last


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _check_depth(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise RecipeYamlError(f"nested more than {MAX_DEPTH} levels deep (line {line})")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes under ``node`` with every alias expanded (an alias is the same node object twice)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once while it is being counted
    if isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_nodes(n, memo) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
    else:
        total = 1
    memo[id(node)] = total
    return total


def _check_text(value: Any, where: str = "") -> None:
    if isinstance(value, str) and "\0" in value:
        raise RecipeYamlError(f"{where or 'a value'} contains a NUL character")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_text(v, str(k))
    elif isinstance(value, list):
        for v in value:
            _check_text(v, where)


def load_recipe_yaml(path: str | os.PathLike) -> Any:
    """The YAML document at ``path`` within the limits above; raises :class:`RecipeYamlError`
    (with ``path`` in the message), ``UnicodeDecodeError``, ``OSError`` or ``yaml.YAMLError``."""
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise RecipeYamlError(f"{path} is larger than {MAX_BYTES // 1024} KB: not a recipe")
    text = data.decode("utf-8")
    try:
        _check_depth(text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            nodes = _expanded_nodes(node, {})
            if nodes > MAX_NODES:
                raise RecipeYamlError(
                    f"expands to {nodes:,} values through its aliases (more than {MAX_NODES:,}): "
                    "not a recipe"
                )
            value = loader.construct_document(node)
        finally:
            loader.dispose()
        _check_text(value)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if not k.startswith(".")}
    except RecipeYamlError as exc:
        raise RecipeYamlError(f"{path}: {exc}") from None
    except RecursionError:
        raise RecipeYamlError(f"{path}: nested too deeply") from None
    return value
