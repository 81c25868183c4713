"""What a query selects below a field, with fragments, aliases and @skip/@include resolved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
    get_directive_values,
)
from graphql.type import GraphQLIncludeDirective, GraphQLSkipDirective

__all__ = ["Selection", "subselection"]


class Selection:
    """The fields selected below a set of field nodes, merged by field name (not alias)."""

    __slots__ = ("_children", "_fragments", "_variables")

    def __init__(
        self,
        nodes: Iterable[FieldNode],
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Any,
    ) -> None:
        self._fragments = fragments
        self._variables = variables
        self._children: dict[str, list[FieldNode]] = {}
        for node in nodes:
            if node.selection_set is not None:
                self._collect(node.selection_set, set())

    def _included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self._variables)
        if skip and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self._variables)
        return not (include and include.get("if") is False)

    def _collect(self, selection_set: SelectionSetNode, seen: set[str]) -> None:
        for sel in selection_set.selections:
            if not self._included(sel):
                continue
            if isinstance(sel, FieldNode):
                self._children.setdefault(sel.name.value, []).append(sel)
            elif isinstance(sel, InlineFragmentNode):
                self._collect(sel.selection_set, seen)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                fragment = self._fragments.get(name)
                if fragment is not None and name not in seen:
                    self._collect(fragment.selection_set, seen | {name})

    @property
    def names(self) -> set[str]:
        """Names (not aliases) of the selected fields."""
        return set(self._children)

    def __contains__(self, name: str) -> bool:
        return name in self._children

    def child(self, name: str) -> Selection:
        """The selection below field ``name`` (empty if not selected)."""
        return Selection(self._children.get(name, ()), self._fragments, self._variables)

    def nodes(self, name: str) -> list[FieldNode]:
        """The field nodes selected under ``name`` (one per alias or repetition)."""
        return list(self._children.get(name, ()))


def subselection(info: Any) -> Selection:
    """The selection below the field being resolved (from a strawberry ``Info``)."""
    raw = info._raw_info
    return Selection(raw.field_nodes, raw.fragments, raw.variable_values)
