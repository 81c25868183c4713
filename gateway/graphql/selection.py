"""What a query selects below a field, with fragments, aliases and @skip/@include resolved."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    Visitor,
    get_named_type,
    parse,
    visit,
)

__all__ = ["Selection", "selected_types", "subselection"]

_DOCUMENTS = 512


class _Types(Visitor):
    """Collects the named types of every field, parent type and inline fragment condition."""

    def __init__(self, info: TypeInfo) -> None:
        super().__init__()
        self.info = info
        self.types: set[str] = set()

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.info.get_parent_type()
        if parent is not None:
            self.types.add(parent.name)
        found = self.info.get_type()
        if found is not None:
            self.types.add(get_named_type(found).name)

    def enter_inline_fragment(self, node: InlineFragmentNode, *_: Any) -> None:
        found = self.info.get_type()
        if found is not None:
            self.types.add(get_named_type(found).name)


@functools.lru_cache(maxsize=_DOCUMENTS)
def selected_types(schema: GraphQLSchema, document: str) -> frozenset[str]:
    """Every type a document's selections touch, at any depth (empty if it does not parse);
    kept for the last documents seen."""
    try:
        tree = parse(document)
    except GraphQLError:
        return frozenset()
    info = TypeInfo(schema)
    collector = _Types(info)
    visit(tree, TypeInfoVisitor(info, collector))
    return frozenset(collector.types)


class Selection:
    """The fields selected below a set of field nodes, merged by field name (not alias)."""

    __slots__ = ("_children", "_fragments", "_node_names", "_variables")

    def __init__(
        self,
        nodes: Iterable[FieldNode],
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Any,
    ) -> None:
        self._fragments = fragments
        self._variables = variables
        self._children: dict[str, list[FieldNode]] = {}
        self._node_names: frozenset[str] | None = None
        for node in nodes:
            if node.selection_set is not None:
                self._collect(node.selection_set, set())

    def _included(self, node: Any) -> bool:
        """``@skip``/``@include`` as graphql-core decides them (variables already coerced)."""
        for directive in node.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            value = _condition(directive, self._variables)
            if (name == "skip") is value:
                return False
        return True

    def _collect(self, selection_set: SelectionSetNode, seen: set[str]) -> None:
        # ``seen`` is shared by the whole collection, as in graphql-core's collect_fields: a
        # fragment spread twice adds nothing the second time, so the work is linear.
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
                    seen.add(name)
                    self._collect(fragment.selection_set, seen)

    @property
    def names(self) -> set[str]:
        """Names (not aliases) of the selected fields."""
        return set(self._children)

    def __contains__(self, name: str) -> bool:
        return name in self._children

    def node_names(self) -> frozenset[str]:
        """The names selected on a connection's rows (under ``nodes`` and ``edges { node }``),
        kept: a one-pass plan's selections serve every request of the plan."""
        found = self._node_names
        if found is None:
            nodes = self.child("nodes").names | self.child("edges").child("node").names
            found = self._node_names = frozenset(nodes)
        return found

    def child(self, name: str) -> Selection:
        """The selection below field ``name`` (empty if not selected)."""
        return Selection(self._children.get(name, ()), self._fragments, self._variables)

    def nodes(self, name: str) -> list[FieldNode]:
        """The field nodes selected under ``name`` (one per alias or repetition)."""
        return list(self._children.get(name, ()))


def _condition(directive: DirectiveNode, variables: Any) -> bool | None:
    """The ``if`` argument of ``@skip``/``@include``: a literal or a coerced variable."""
    for argument in directive.arguments or ():
        if argument.name.value != "if":
            continue
        value = argument.value
        if isinstance(value, BooleanValueNode):
            return bool(value.value)
        if isinstance(value, VariableNode):
            coerced = getattr(variables, "coerced", variables)
            found = coerced.get(value.name.value) if isinstance(coerced, Mapping) else None
            return found if isinstance(found, bool) else None
    return None


def subselection(info: Any) -> Selection:
    """The selection below the field being resolved (from a strawberry ``Info``)."""
    raw = info._raw_info
    return Selection(raw.field_nodes, raw.fragments, raw.variable_values)
