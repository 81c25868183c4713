"""The W3C CSVW metadata beside each CSV export (``{Entity}.csv-metadata.json``).

"Metadata Vocabulary for Tabular Data" (https://www.w3.org/TR/tabular-metadata/): one table
whose ``url`` is the CSV (relative to the metadata file, with the same ``where``/``order``),
its ``dialect`` (header row, ``CRLF``, doubled quotes) and ``tableSchema.columns``: name,
source name as ``titles``, ``datatype`` and ``required``, for the columns the caller's level
reads (as in the CSV). Codes are text upstream and stay ``string`` (``03159016`` keeps its
leading zero). ``null`` is the empty field; an empty text is written ``""``, which
readers that look at quoting (polars, pyarrow.csv) keep apart from null.

Non-CSVW properties are prefixed ``dls:``: ``dls:pandas`` holds ready keyword arguments for
``pandas.read_csv`` (``dtype`` per column, ``parse_dates``, ``keep_default_na=False``,
``na_values=[""]``), so that codes are not turned into numbers and texts like ``NA`` stay
texts. pandas reads a quoted empty field as null too; a reader that must tell them apart
uses polars or pyarrow. ``dc:source``/``dls:attribution`` carry the register's attribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.dls.attribution import Attribution
from gateway.model.datamodel import Entity, Field, Register, ScalarType

__all__ = ["CSVW_DATATYPES", "PANDAS_DTYPES", "csvw_document", "pandas_arguments"]

CSVW_DATATYPES: Mapping[ScalarType, Any] = {
    ScalarType.STRING: "string",
    ScalarType.INT: "int",
    ScalarType.LONG: "long",
    ScalarType.FLOAT: "double",
    ScalarType.BOOLEAN: {"base": "boolean", "format": "true|false"},
    ScalarType.DATE: {"base": "date", "format": "yyyy-MM-dd"},
    ScalarType.DATETIME: "datetime",
}

# pandas' nullable extension dtypes: a null stays <NA>, an integer stays an integer.
PANDAS_DTYPES: Mapping[ScalarType, str] = {
    ScalarType.STRING: "string",
    ScalarType.INT: "Int32",
    ScalarType.LONG: "Int64",
    ScalarType.FLOAT: "Float64",
    ScalarType.BOOLEAN: "boolean",
    ScalarType.DATE: "string",
    ScalarType.DATETIME: "string",
}


def pandas_arguments(columns: Sequence[Field]) -> dict[str, Any]:
    """Keyword arguments for ``pandas.read_csv`` of a CSV export with ``columns``."""
    return {
        "dtype": {f.name: PANDAS_DTYPES[f.type] for f in columns},
        "keep_default_na": False,
        "na_values": [""],
        "true_values": ["true"],
        "false_values": ["false"],
    }


def csvw_document(
    register: Register,
    entity: Entity,
    columns: Sequence[Field],
    csv_url: str,
    attribution: Attribution | None,
) -> dict[str, Any]:
    """The CSVW metadata of one CSV export."""
    visible = {f.name for f in columns}
    schema: dict[str, Any] = {
        "columns": [
            {
                "name": f.name,
                "titles": f.name,
                "dc:description": f"source name: {f.source}",
                "datatype": CSVW_DATATYPES[f.type],
                "required": not f.nullable,
                "null": "",
            }
            for f in columns
        ],
    }
    key = list(entity.key)  # GraphQL names
    if key and all(k in visible for k in key):
        schema["primaryKey"] = key
    document: dict[str, Any] = {
        "@context": ["http://www.w3.org/ns/csvw", {"dls": "https://dls-gateway.invalid/ns#"}],
        "url": csv_url,
        "dc:title": f"{register.name} {entity.graphql_name}",
        "dialect": {
            "header": True,
            "delimiter": ",",
            "quoteChar": '"',
            "doubleQuote": True,
            "lineTerminators": ["\r\n"],
            "encoding": "utf-8",
        },
        "tableSchema": schema,
        "dls:register": register.name,
        "dls:rc": register.rc,
        "dls:entity": entity.name,
        "dls:pandas": pandas_arguments(columns),
    }
    if entity.description:
        document["dc:description"] = entity.description
    if attribution is not None:
        document["dc:source"] = attribution.line()
        document["dls:attribution"] = attribution.as_json()
    return document
