"""Writing ``REPORT.md`` from the suite's ``results.json`` (see ``run.py``).

uv run python bench/perf/report.py   # rewrite the report from results.json
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PERF = Path(__file__).resolve().parent

# GraphQL Mesh's figures on a similar 2-core machine, measured elsewhere: Mesh cannot run here
# (no Node gateway is shipped). They are the targets' yardstick only.
MESH_UNCACHED_RPS = 48
MESH_HIT_RPS = 4250

SCENARIOS = {
    "hit": ("Response-cache hit (100 rows + relation)", "Starlette JSON route, same bytes"),
    "cached": (
        "100 `FT_Stemme` + `Aktoer { navn }`, upstream cached, new variables",
        "hand-written strawberry + DataLoader, upstream cached, document caches",
    ),
    "deep": (
        "`FT_Stemme → Afstemning → Stemme → Aktoer`, upstream cached, new variables",
        "hand-written strawberry + DataLoader, upstream cached, document caches",
    ),
    "cold": (
        "100 `FT_Stemme` + `Aktoer { navn }`, upstream cache off (`ttl` 0)",
        "hand-written strawberry + DataLoader, no upstream cache, document caches",
    ),
    "valg": ("`VALG_Valgresultat` pages of 100 with cursors, response cache off", ""),
}


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def _results_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| scenario | server | req/s | p50 ms | p99 ms | CPU µs/req | upstream req/query |"
        " peak RSS MiB | req/s vs ref. | CPU/req vs ref. |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, (title, reference_name) in SCENARIOS.items():
        entry = results["scenarios"].get(key)
        if entry is None:
            continue
        rows = list(entry["results"].items())
        reference = rows[1][1] if len(rows) > 1 else None
        for index, (_, r) in enumerate(rows):
            name = "gateway" if index == 0 else reference_name
            versus_rps = versus_cpu = ""
            if index == 0 and reference is not None:
                versus_rps = _ratio(r["rps"], reference["rps"])
                # Below 1 is better: the gateway spends less CPU per request.
                versus_cpu = _ratio(r["cpu_us"], reference["cpu_us"])
            lines.append(
                f"| {title if index == 0 else ''} | {name} | {_num(r['rps'])} | "
                f"{_num(r['p50_ms'], 1)} | {_num(r['p99_ms'], 1)} | {_num(r['cpu_us'])} | "
                f"{_num(r['upstream_per_query'], 2)} | {_num(r['peak_rss_mib'])} | "
                f"{versus_rps} | {versus_cpu} |"
            )
    return lines


def _first(entry: dict[str, Any], index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = list(entry["results"].values())[index]
    return result


def _targets(results: dict[str, Any]) -> list[str]:
    scenarios = results["scenarios"]
    lines = ["| target | measured | met |", "|---|---|---|"]
    if "hit" in scenarios:
        gateway, starlette = _first(scenarios["hit"]), _first(scenarios["hit"], 1)
        ratio = gateway["rps"] / starlette["rps"]
        lines.append(
            f"| response-cache hit ≥ 1.0× the Starlette route | {ratio:.2f}× "
            f"({_num(gateway['rps'])} vs {_num(starlette['rps'])} req/s); "
            f"{gateway['rps'] / MESH_HIT_RPS:.2f}× Mesh's hit |"
            f" {'yes' if ratio >= 1.0 else 'no'} |"
        )
    if "cached" in scenarios:
        rps = _first(scenarios["cached"])["rps"]
        lines.append(
            f"| cached-upstream execution ≥ 500 req/s on one core (≥ 10× Mesh's uncached "
            f"{MESH_UNCACHED_RPS}) | {_num(rps)} req/s = {rps / MESH_UNCACHED_RPS:.1f}× Mesh's "
            f"figure | {'yes' if rps >= 500 else 'no'} |"
        )
        lines.append(
            f"| stretch: 2,000 req/s | {_num(rps)} req/s | {'yes' if rps >= 2000 else 'no'} |"
        )
    if "cold" in scenarios:
        cold = _first(scenarios["cold"])["upstream_per_query"]
        deep = scenarios["cold"].get("deep_upstream_per_query")
        ok = cold is not None and cold <= 2 and (deep is None or deep <= 4)
        lines.append(
            "| upstream requests per query ≤ relation levels × chunks | cold page + relation: "
            f"{_num(cold, 2)} (bound 2: root + 1 level); cold deep query: {_num(deep, 2)} "
            f"(bound 4: root + 3 levels) | {'yes' if ok else 'no'} |"
        )
    startup = results.get("startup")
    if startup:
        seconds = statistics.median(s["seconds"]["load_gateway"] for s in startup)
        before = results.get("startup_decorated") or []
        compared = ""
        if before:
            slow = statistics.median(s["seconds"]["load_gateway"] for s in before)
            compared = f" ({seconds / slow:.2f}× the {slow:.2f} s with `strawberry.type` per class)"
        lines.append(
            f"| schema build for all registers < 2 s | `load_gateway` (5 registers, /graphql) "
            f"median {seconds:.2f} s{compared} | {'yes' if seconds < 2 else 'no'} |"
        )
    flat = _flatness(results)
    if flat:
        lines.append(f"| flat memory for whole-set paging and exports | {flat[0]} | {flat[1]} |")
    return lines


def _flatness(results: dict[str, Any]) -> tuple[str, str] | None:
    scenarios = results["scenarios"]
    valg, export = scenarios.get("valg"), scenarios.get("export")
    if valg is None or export is None:
        return None
    rss = valg["rss_mib"]
    # The first walk loads the election's files into the adapter's bounded content cache;
    # paging's own memory is what later walks add.
    loaded = rss.get("after_first_walk", rss["after_walks"])
    walks = rss["after_walks"] - loaded
    run = export["runs"][-1]
    a, b = run["halves_growth_mib"]
    text = (
        f"VALG: RSS {rss['before']:.0f} MiB → {loaded:.0f} MiB after the first walk (files "
        f"loaded), {rss['after_walks']:.0f} MiB after three more ({walks:+.1f} MiB), "
        f"{rss['after_load']:.0f} MiB after {_first(valg)['requests']:,} pages from 50 "
        f"connections at once; export of {run['rows']:,} rows: peak growth "
        f"{run['peak_growth_mib']:.1f} MiB ({a:.1f} / {b:.1f} MiB in its two halves)"
    )
    met = abs(walks) < 20 and run["peak_growth_mib"] < 20
    return text, "yes" if met else "no"


def _startup(results: dict[str, Any]) -> list[str]:
    runs = results.get("startup") or []
    if not runs:
        return []
    phases = list(runs[0]["seconds"])
    lines = [
        f"Fresh process each time, bytecode compiled; {runs[0]['registers']} registers, "
        f"{runs[0]['types']} GraphQL types, {runs[0]['root_fields']} root fields. "
        "`load_gateway` is what `gateway serve` does before listening; the other phases are "
        "measured again one by one after it.",
        "",
        "| phase | " + " | ".join(f"run {i + 1} s" for i in range(len(runs))) + " | median s |",
        "|---|" + "---|" * (len(runs) + 1),
    ]
    for phase in phases:
        values = [r["seconds"][phase] for r in runs]
        cells = " | ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {phase} | {cells} | {statistics.median(values):.2f} |")
    before = results.get("startup_decorated") or []
    if len(before) == len(runs):
        lines.append("")
        lines.append(
            "The same, every generated class made through `strawberry.type` (a dataclass per "
            "class, as before the gateway gave them their definitions directly), also in fresh "
            "processes of this run:"
        )
        lines += ["", lines[2], lines[3]]
        for phase in ("load_gateway", "strawberry_types", "graphql_schema"):
            values = [r["seconds"][phase] for r in before]
            cells = " | ".join(f"{v:.2f}" for v in values)
            lines.append(f"| {phase} | {cells} | {statistics.median(values):.2f} |")
    return lines


def _valg_export(results: dict[str, Any]) -> list[str]:
    scenarios = results["scenarios"]
    lines: list[str] = []
    valg = scenarios.get("valg")
    if valg is not None:
        r = _first(valg)
        lines += [
            f"VALG: {valg['rows']:,} `VALG_Valgresultat` rows in {valg['pages']} pages of 100. "
            f"First walk (downloads and verifies the signed files over SFTP): "
            f"{valg['first_walk_s']:.1f} s; later walks, one client, page after page: median "
            f"{valg['walk_s']:.2f} s ({valg['walk_s'] / valg['pages'] * 1000:.0f} ms a page). "
            f"Under load (every page, 50 connections): {_num(r['rps'])} pages/s, "
            f"{_num(r['cpu_us'])} µs CPU a page, {_num(r['upstream_per_query'], 3)} upstream "
            "requests a page (directory listings as their 15 s `ttl` lapses).",
            "",
        ]
    export = scenarios.get("export")
    if export is not None:
        lines += [
            "Export `GET /FT/v1/download/Stemme.csv` (every row; exports bypass the upstream "
            "cache), one client streaming and discarding:",
            "",
            "| run | rows | MB | seconds | rows/s | gateway CPU s | µs CPU/row |"
            " upstream requests | RSS before MiB | peak growth MiB | growth 1st/2nd half MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, run in enumerate(export["runs"], 1):
            a, b = run["halves_growth_mib"]
            lines.append(
                f"| {i} | {run['rows']:,} | {run['bytes'] / 1e6:.1f} | {run['seconds']:.1f} | "
                f"{run['rows_per_s']:,.0f} | {run['cpu_s']:.2f} | "
                f"{run['cpu_s'] / run['rows'] * 1e6:.0f} | {run['upstream']} | "
                f"{run['baseline_mib']:.0f} | {run['peak_growth_mib']:.1f} | {a:.1f}/{b:.1f} |"
            )
    return lines


def _wins(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for group, table in results.get("wins", {}).items():
        names = list(table)
        base = table[names[0]]
        per_run = base["requests"] // max(len(base["runs"]), 1)
        lines += [
            f"**{group}** (each a separate process; {per_run:,} requests a run for the first)",
            "",
            "| variant | req/s | CPU µs/req | CPU vs first row | p50 ms | p99 ms | peak RSS MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in names:
            r = table[name]
            change = (r["cpu_us"] / base["cpu_us"] - 1) * 100 if base["cpu_us"] else 0.0
            lines.append(
                f"| {name} | {_num(r['rps'])} | {_num(r['cpu_us'])} | "
                f"{'–' if name == names[0] else f'{change:+.0f} %'} | {_num(r['p50_ms'], 1)} | "
                f"{_num(r['p99_ms'], 1)} | {_num(r['peak_rss_mib'])} |"
            )
        lines.append("")
    return lines


def _profile(results: dict[str, Any]) -> list[str]:
    prof = results.get("profile")
    if not prof:
        return ["No profile in this run (py-spy was not available)."]
    lines = [
        "py-spy, 200 samples/s, on the gateway during the cached-upstream scenario (the one "
        "where the gateway's CPU is the ceiling): `profile-cached-upstream.svg` (flame graph) "
        "and `profile-cached-upstream.speedscope.json` (open in speedscope.app).",
        "",
        "| self % | function | | inclusive % | function |",
        "|---|---|---|---|---|",
    ]
    for own, incl in zip(prof["self"], prof["inclusive"], strict=False):
        lines.append(f"| {own[1]:.1f} | `{own[0]}` | | {incl[1]:.1f} | `{incl[0]}` |")
    return lines


def write_report(results: dict[str, Any], output: Path, notes: Path) -> None:
    """Write the Markdown report."""
    machine = results["machine"]
    settings = results["settings"]
    pin = results["pinning"]
    load = results["load_average"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    lines: list[str] = [
        "# Performance report",
        "",
        f"Generated by `bash scripts/bench` (`bench/perf/run.py`) on {results['started']} in "
        f"{results.get('seconds', 0)} s. Raw figures: `results.json`.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, Linux {machine['kernel']}, "
        f"Python {machine['python']}; {packages}; {machine['wrk']}.",
        f"Servers under test pinned to core {pin['server_core']}, wrk and the replicas to core "
        f"{pin['load_core']} (taskset). wrk: 1 thread, {settings['connections']} connections, "
        f"{settings['warm']:g} s warm-up, then {settings['runs']} runs of "
        f"{settings['seconds']:g} s per server, servers of a scenario interleaved run by run; "
        "figures are medians (peak RSS: the highest). CPU per request is utime + stime of the "
        "server process over the run divided by the requests answered; it is the steadiest "
        "figure when other work shares the machine "
        f"(load average {load['start'][0]:.2f} at the start, "
        f"{load.get('end', [0.0])[0]:.2f} at the end).",
        "Every server runs under uvicorn with its defaults here (uvloop and httptools, both "
        "locked dependencies; one row of each cheap-wins table hides them), rate limits off "
        "(`[rate_limit] enabled = false`).",
        "GraphQL Mesh cannot run here (no Node gateway is part of the project); its figures "
        "were measured elsewhere on a similar 2-core machine, and are used only as the "
        "targets' yardstick.",
        "",
        "## Results",
        "",
        *_results_table(results),
        "",
        "New variables every request: each request carries an extra variable `nonce` with a "
        "number no other request uses (declared nowhere, so it changes no answer), so the "
        "whole-response cache never hits while the upstream cache does. Same answers: "
        + ", ".join(
            f"{k} {v['same_answers']}"
            for k, v in results["scenarios"].items()
            if "same_answers" in v
        )
        + " (gateway vs hand-written server, compared as JSON).",
        "",
        "## Targets",
        "",
        *_targets(results),
        "",
        "## Start-up: schema build",
        "",
        *_startup(results),
        "",
        "## Whole-set paging and export",
        "",
        *_valg_export(results),
        "",
        "## The cheap wins, one by one",
        "",
        *_wins(results),
        "## Profile of the hottest scenario",
        "",
        *_profile(results),
        "",
    ]
    if results.get("notes"):
        lines += ["## Notes from this run", "", *[f"- {n}" for n in results["notes"]], ""]
    if notes.exists():
        lines += [notes.read_text("utf-8").rstrip(), ""]
    output.write_text("\n".join(lines), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    results = json.loads((PERF / "results.json").read_text("utf-8"))
    write_report(results, PERF / "REPORT.md", PERF / "notes.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
