"""Start-up cost: loading every shipped register and building the schema served at /graphql.

Runs in a fresh process and prints one JSON object of seconds: ``imports`` (the gateway and
every adapter module, imported up front so that they are not counted below),
``load_gateway`` (what ``gateway serve`` does before it listens: read and validate the
registers, create the sources, build ``/graphql``), and, measured again on their own,
``load_registers`` (descriptors and datamodels), ``strawberry_types`` (the generated
classes), ``graphql_schema`` (strawberry's conversion to a graphql-core schema) and
``view`` (the HTTP view around it).

With ``--via-decorator`` every generated class is made the usual way instead, through
``strawberry.type`` (a dataclass per class), for comparison: the gateway gives them their
strawberry definitions directly.

    uv run python bench/perf/schema_build.py [--registers registers]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _timed(clock: dict[str, float], name: str, started: float) -> float:
    now = time.perf_counter()
    clock[name] = round(now - started, 3)
    return now


def _decorated(
    cls: type,
    fields: Any,
    *,
    is_input: bool = False,
    description: str | None = None,
    directives: Any = (),
) -> type:
    import strawberry

    annotations: dict[str, Any] = {}
    for f in fields:
        setattr(cls, f.python_name, f)
        annotations[f.python_name] = f.type_annotation.annotation
    cls.__annotations__ = annotations
    made: type = strawberry.type(
        cls, name=cls.__name__, is_input=is_input, description=description, directives=directives
    )
    return made


def measure(registers: Path, via_decorator: bool = False) -> dict[str, Any]:
    """Seconds per start-up phase (see the module docstring)."""
    clock: dict[str, float] = {}
    started = time.perf_counter()
    import gateway.graphql.schema
    from gateway.http.app import load_gateway

    if via_decorator:
        gateway.graphql.schema._TypeSet.finish = staticmethod(_decorated)  # type: ignore[method-assign]
    from gateway.http.config import Settings
    from gateway.sources.kinds import kinds

    kinds()  # every kind's adapter, detector and options
    started = _timed(clock, "imports", started)

    settings = Settings(registers_dir=registers)
    gateway = load_gateway(settings)
    started = _timed(clock, "load_gateway", started)

    # The same work again, phase by phase (a second build reuses nothing of the first).
    import strawberry

    from gateway.dls.descriptors import load_registers
    from gateway.graphql.schema import SchemaSpec, _Builder, build_schema
    from gateway.http.view import GatewayView

    report = load_registers(registers)
    started = _timed(clock, "load_registers", started)
    spec = SchemaSpec(report.registers)
    _Builder(spec).build()
    started = _timed(clock, "strawberry_types", started)
    schema = build_schema(SchemaSpec(report.registers), settings.limits)
    total_build = time.perf_counter() - started
    clock["graphql_schema"] = round(max(total_build - clock["strawberry_types"], 0.0), 3)
    started = time.perf_counter()
    GatewayView(schema, gateway.runtime, settings)
    _timed(clock, "view", started)
    query = schema._schema.query_type
    assert isinstance(schema, strawberry.Schema)
    assert query is not None
    return {
        "seconds": clock,
        "registers": len(report.registers),
        "types": len(schema._schema.type_map),
        "root_fields": len(query.fields),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registers", type=Path, default=ROOT / "registers")
    parser.add_argument("--via-decorator", action="store_true")
    args = parser.parse_args()
    sys.stdout.write(json.dumps(measure(args.registers, args.via_decorator)) + "\n")


if __name__ == "__main__":
    main()
