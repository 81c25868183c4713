"""The GraphiQL playground, served from the gateway's own files (no CDN).

The page is GraphiQL (vendored in ``gateway/http/static/``) plus a small script of ours that:
sends the API key typed once into the page's key field (kept in the browser's
localStorage) as ``X-API-Key`` on every request; opens one tab per register with an
example query built from the schema; and shows each type's and field's security level,
in the documentation explorer (appended to the descriptions) and in a "Security levels"
panel. This module renders the page and computes what the script needs.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from graphql import (
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
)
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from gateway.model.datamodel import Entity, Register

__all__ = [
    "ASSETS",
    "CONTENT_SECURITY_POLICY",
    "STATIC_DIR",
    "Example",
    "examples",
    "levels",
    "page",
    "routes",
]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
ASSETS: Final = "/_playground"

# Everything the page loads comes from the gateway itself.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_EXAMPLE_FIELDS: Final = 4
_EXAMPLE_ROWS: Final = 5

_SCRIPTS: Final = (
    "vendor/react.production.min.js",
    "vendor/react-dom.production.min.js",
    "vendor/graphiql.min.js",
    "vendor/graphiql-plugin-explorer.umd.js",
    "playground.js",
)
_STYLES: Final = (
    "vendor/graphiql.min.css",
    "vendor/graphiql-plugin-explorer.css",
    "playground.css",
)


def routes() -> list[BaseRoute]:
    """The static files of the playground."""
    return [Mount(ASSETS, app=StaticFiles(directory=STATIC_DIR), name="playground")]


@dataclass(frozen=True, slots=True)
class Example:
    """An example query of one register."""

    register: str
    title: str
    query: str


def page(endpoint: str, schema: GraphQLSchema, registers: Mapping[str, Register]) -> HTMLResponse:
    """The playground page for the GraphQL endpoint at ``endpoint``."""
    config = {
        "endpoint": endpoint,
        "storageNamespace": f"dls-gateway:{endpoint}",
        "apiKeyStorage": "dls-gateway:api-key",
        "examples": [
            {"register": e.register, "title": e.title, "query": e.query}
            for e in examples(schema, registers)
        ],
        "levels": levels(schema, registers),
    }
    # "<" is escaped so that no value can close the script element.
    data = json.dumps(config, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    styles = "".join(f'<link rel="stylesheet" href="{ASSETS}/{s}">' for s in _STYLES)
    scripts = "".join(f'<script src="{ASSETS}/{s}"></script>' for s in _SCRIPTS)
    title = html.escape(f"dls-gateway GraphiQL · {endpoint}")
    body = _TEMPLATE.format(
        title=title, endpoint=html.escape(endpoint), styles=styles, scripts=scripts, config=data
    )
    return HTMLResponse(
        body,
        headers={
            "content-security-policy": CONTENT_SECURITY_POLICY,
            "cache-control": "no-cache",
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
        },
    )


_TEMPLATE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
{styles}
</head>
<body>
<header id="dls-bar">
<strong>dls-gateway</strong>
<span class="dls-endpoint">endpoint <code>{endpoint}</code></span>
<form id="dls-key-form" autocomplete="off">
<label for="dls-api-key">API key</label>
<input id="dls-api-key" name="api-key" type="password" placeholder="none: public data only">
<button type="submit" id="dls-key-save">Use key</button>
<button type="button" id="dls-key-forget">Forget key</button>
<span id="dls-key-state" role="status"></span>
</form>
</header>
<main id="graphiql">Loading GraphiQL…</main>
<script type="application/json" id="dls-config">{config}</script>
{scripts}
</body>
</html>
"""


# --- what the page shows ------------------------------------------------------------------


def _entities(
    schema: GraphQLSchema, registers: Mapping[str, Register]
) -> list[tuple[Register, Entity]]:
    """The entities served by ``schema`` (those with a root field), register by register."""
    root = schema.query_type.fields if schema.query_type is not None else {}
    return [
        (register, entity)
        for register in sorted(registers.values(), key=lambda r: (r.rc, r.name))
        for entity in register.datamodel.entities.values()
        if entity.graphql_name in root
    ]


def levels(schema: GraphQLSchema, registers: Mapping[str, Register]) -> dict[str, Any]:
    """Security levels by GraphQL type: ``{type: {"level": n, "fields": {field: n}}}``.

    ``Query`` lists its root fields (each needs its entity's level). A relation field needs
    the level of its target entity and of both join fields.
    """
    out: dict[str, Any] = {}
    query_fields: dict[str, int] = {}
    for register, entity in _entities(schema, registers):
        level = register.entity_level(entity.name)
        query_fields[entity.graphql_name] = level
        graphql_type = schema.type_map.get(entity.graphql_name)
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        fields: dict[str, int] = {}
        for name in graphql_type.fields:
            scalar = entity.by_name.get(name)
            if scalar is not None:
                fields[name] = register.field_level(entity.name, scalar.source)
            else:
                fields[name] = _relation_level(register, entity, name, registers, level)
        out[entity.graphql_name] = {"level": level, "fields": fields}
    if schema.query_type is not None:
        out[schema.query_type.name] = {"level": 0, "fields": query_fields}
    return out


def _relation_level(
    register: Register,
    entity: Entity,
    alias: str,
    registers: Mapping[str, Register],
    entity_level: int,
) -> int:
    for relations in register.relation_versions.values():
        for relation in relations:
            if relation.source_entity != entity.name or relation.alias != alias:
                continue
            target = registers.get(relation.target_register)
            found = [register.field_level(entity.name, relation.source_field)]
            if target is not None:
                found.append(target.entity_level(relation.target_entity))
                found.append(target.field_level(relation.target_entity, relation.target_field))
            return max(found)
    return entity_level


def examples(schema: GraphQLSchema, registers: Mapping[str, Register]) -> list[Example]:
    """One example query per register: its most open entity with a few of its fields."""
    by_register: dict[str, list[Entity]] = {}
    for register, entity in _entities(schema, registers):
        by_register.setdefault(register.name, []).append(entity)
    out: list[Example] = []
    for name, entities in by_register.items():
        register = registers[name]
        # The first entity of the lowest level: the example runs for as many callers as can be.
        entity = min(entities, key=lambda e: register.entity_level(e.name))
        fields = _example_fields(schema, register, entity)
        if fields:
            out.append(_example(register, entity, fields))
    return out


def _example_fields(schema: GraphQLSchema, register: Register, entity: Entity) -> list[str]:
    graphql_type = schema.type_map.get(entity.graphql_name)
    if not isinstance(graphql_type, GraphQLObjectType):
        return []
    level = register.entity_level(entity.name)
    # Fields no higher than their entity's level, the key first.
    ordered = sorted(
        (f for f in entity.fields if f.name in graphql_type.fields),
        key=lambda f: f.name not in entity.key,
    )
    return [
        f.name
        for f in ordered
        if register.field_level(entity.name, f.source) <= level
        and _is_scalar(graphql_type.fields[f.name])
    ][:_EXAMPLE_FIELDS]


def _is_scalar(field: GraphQLField) -> bool:
    inner = get_nullable_type(field.type)
    return not is_list_type(inner) and is_leaf_type(get_named_type(inner))


def _example(register: Register, entity: Entity, fields: list[str]) -> Example:
    level = register.entity_level(entity.name)
    about = (entity.description or entity.name).splitlines()[0].strip()
    if len(about) > 90:
        about = about[:87] + "..."
    lines = [f"# {register.name}: {entity.graphql_name}, {about}"]
    attribution = register.source.get("attribution")
    if isinstance(attribution, str) and attribution:
        lines.append(f"# Source: {attribution}")
    lines.append(
        f"# Security level {level}"
        + (" (public)." if level == 0 else ": enter an API key of that level above.")
    )
    lines.append("# Run it with Ctrl-Enter or the run button; see Docs for every field.")
    lines.append(f"query {register.name}_example {{")
    lines.append(f"  {entity.graphql_name}(first: {_EXAMPLE_ROWS}) {{")
    lines.append("    nodes {")
    lines.extend(f"      {f}" for f in fields)
    lines.append("    }")
    lines.append("  }")
    lines.append("}")
    return Example(register.name, f"{register.name} · {entity.graphql_name}", "\n".join(lines))
