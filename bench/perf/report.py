"""Writing ``REPORT.md`` from the suite's ``results.json`` (see ``run.py``).

Every scenario's servers are keyed by role: ``gateway`` (this tree), ``baseline`` (the
previous gateway, from a worktree of an earlier commit), ``strawberry`` (the hand-written
strawberry + DataLoader server), ``starlette json`` and ``starlette bytes`` (plain Starlette
routes answering the same answer, encoded on every request or as precomputed bytes).

    uv run python bench/perf/report.py   # rewrite the report from results.json
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PERF = Path(__file__).resolve().parent

SCENARIOS = {
    "hit": "Response-cache hit (100 rows + relation)",
    "cached": "100 `FT_Stemme` + `Aktoer { navn }`, upstream cached, new variables",
    "deep": "`FT_Stemme → Afstemning → Stemme → Aktoer`, upstream cached, new variables",
    "cold": "100 `FT_Stemme` + `Aktoer { navn }`, upstream cache off (`ttl` 0)",
    "valg": "`VALG_Valgresultat` pages of 100 with cursors, response cache off",
}
SERVERS = {
    "gateway": "gateway",
    "baseline": "previous gateway",
    "starlette json": "Starlette route, `JSONResponse` of the same answer",
    "starlette bytes": "Starlette route, the same answer as precomputed bytes",
}
STRAWBERRY = {
    "cold": "hand-written strawberry + DataLoader, no upstream cache, document caches",
}
STRAWBERRY_CACHED = "hand-written strawberry + DataLoader, upstream cached, document caches"
# Within this share of the previous gateway's figure a change is taken for noise.
NOISE = 0.10


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def _gateway(entry: dict[str, Any]) -> dict[str, Any]:
    """The gateway's figures in a scenario (the first server in a results file from before
    servers were keyed by role)."""
    results: dict[str, Any] = entry["results"]
    found: dict[str, Any] = results.get("gateway") or next(iter(results.values()))
    return found


def _server_name(scenario: str, key: str) -> str:
    if key == "strawberry":
        return STRAWBERRY.get(scenario, STRAWBERRY_CACHED)
    return SERVERS.get(key, key)


def _results_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| scenario | server | req/s | p50 ms | p99 ms | CPU µs/req | upstream req/query |"
        " peak RSS MiB | gateway's req/s ÷ this | gateway's CPU/req ÷ this |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, title in SCENARIOS.items():
        entry = results["scenarios"].get(key)
        if entry is None:
            continue
        rows = entry["results"]
        gateway = rows.get("gateway")
        for index, (name, r) in enumerate(rows.items()):
            versus_rps = versus_cpu = ""
            if name != "gateway" and gateway is not None:
                versus_rps = _ratio(gateway["rps"], r["rps"])
                # Below 1 is better: the gateway spends less CPU per request.
                versus_cpu = _ratio(gateway["cpu_us"], r["cpu_us"])
            lines.append(
                f"| {title if index == 0 else ''} | {_server_name(key, name)} | {_num(r['rps'])} | "
                f"{_num(r['p50_ms'], 1)} | {_num(r['p99_ms'], 1)} | {_num(r['cpu_us'])} | "
                f"{_num(r['upstream_per_query'], 2)} | {_num(r['peak_rss_mib'])} | "
                f"{versus_rps} | {versus_cpu} |"
            )
    return lines


@dataclass(frozen=True)
class Figure:
    """One measured value of a target, with how it reads."""

    value: float | None
    text: str


def _row(
    rows: dict[str, Any], key: str, reference: str, field: str = "rps"
) -> tuple[float | None, str]:
    """``key``'s figure over ``reference``'s, and the figures it comes from."""
    a, b = rows.get(key), rows.get(reference)
    if a is None or b is None or not b[field]:
        return None, "–"
    ratio = a[field] / b[field]
    return ratio, (
        f"{ratio:.2f}× ({_num(a['rps'])} vs {_num(b['rps'])} req/s; "
        f"{_num(a['cpu_us'])} vs {_num(b['cpu_us'])} µs CPU/req)"
    )


def _attainment(value: float | None, target: float, higher: bool) -> float | None:
    """1 or more: met. How far the value is from the target as a factor."""
    if value is None or value <= 0:
        return None
    return value / target if higher else target / value


def _gap(value: float | None, target: float, higher: bool, unit: str) -> str:
    share = _attainment(value, target, higher)
    if share is None or value is None:
        return "–"
    if share >= 1:
        return f"met, {share:.2f}× the target"
    space = "" if unit == "×" else " "
    if higher:
        short = _num(target - value, 2 if unit == "×" else 0)
        return f"{short}{space}{unit} short: needs {1 / share:.2f}× more"
    return f"{_num(value - target, 1)}{space}{unit} over: needs {1 / share:.2f}× less"


def _target_row(
    name: str, target: float, higher: bool, unit: str, now: Figure, before: Figure | None
) -> str:
    share = _attainment(now.value, target, higher)
    met = "–" if share is None else ("yes" if share >= 1 else "no")
    previous = "–" if before is None else before.text
    change = "–" if before is None else _ratio(now.value, before.value)
    return (
        f"| {name} | {now.text} | {met} | {_gap(now.value, target, higher, unit)} | "
        f"{previous} | {change} |"
    )


def _targets(results: dict[str, Any]) -> list[str]:
    scenarios = results["scenarios"]
    lines = [
        "| target | gateway: measured | met | gap | previous gateway: measured |"
        " gateway ÷ previous |",
        "|---|---|---|---|---|---|",
    ]
    hit = scenarios.get("hit", {}).get("results", {})
    if "starlette bytes" in hit:
        now, previous = (_row(hit, k, "starlette bytes") for k in ("gateway", "baseline"))
        lines.append(
            _target_row(
                "response-cache hit ≥ 0.8× the Starlette route sending precomputed bytes",
                0.8, True, "×", Figure(*now), Figure(*previous) if "baseline" in hit else None,
            )
        )  # fmt: skip
    if "starlette json" in hit:
        now, previous = (_row(hit, k, "starlette json") for k in ("gateway", "baseline"))
        lines.append(
            _target_row(
                "response-cache hit ≥ 1.0× the Starlette route encoding JSON (kept)",
                1.0, True, "×", Figure(*now), Figure(*previous) if "baseline" in hit else None,
            )
        )  # fmt: skip
    cached = scenarios.get("cached", {}).get("results", {})
    if "starlette json" in cached:
        now, previous = (_row(cached, k, "starlette json") for k in ("gateway", "baseline"))
        for name, target in (
            ("cached-upstream 100 rows + relation ≥ 0.5× the Starlette route encoding JSON", 0.5),
            ("stretch: ≥ 0.8× the Starlette route encoding JSON", 0.8),
        ):
            lines.append(
                _target_row(
                    name, target, True, "×",
                    Figure(*now), Figure(*previous) if "baseline" in cached else None,
                )
            )  # fmt: skip
    valg = scenarios.get("valg")
    if valg is not None and "by" in valg:
        by = valg["by"]

        def page(key: str) -> Figure | None:
            if key not in by:
                return None
            v = by[key]
            return Figure(
                v["page_ms"], f"{v['page_ms']:.1f} ms ({v['page_cpu_ms']:.1f} ms CPU) a page"
            )

        def loaded(key: str) -> Figure | None:
            r = valg["results"].get(key)
            if r is None:
                return None
            return Figure(
                r["cpu_us"] / 1000,
                f"{r['cpu_us'] / 1000:.1f} ms CPU a page ({_num(r['rps'])} pages/s, "
                f"p50 {_num(r['p50_ms'], 0)} ms)",
            )

        def first(key: str) -> Figure | None:
            if key not in by:
                return None
            return Figure(by[key]["first_walk_s"], f"{by[key]['first_walk_s']:.1f} s")

        lines.append(
            _target_row(
                "warm VALG page of 100 rows ≤ 10 ms (one client)",
                10, False, "ms", page("gateway") or Figure(None, "–"), page("baseline"),
            )
        )  # fmt: skip
        lines.append(
            _target_row(
                "warm VALG page ≤ 10 ms of CPU under 50 connections",
                10, False, "ms", loaded("gateway") or Figure(None, "–"), loaded("baseline"),
            )
        )  # fmt: skip
        cold_before = first("baseline")
        cold_now = first("gateway") or Figure(None, "–")
        lines.append(
            _target_row(
                f"VALG cold first walk ({valg['pages']} pages): faster than the previous "
                "gateway",
                cold_before.value if cold_before and cold_before.value else 1e9,
                False, "s", cold_now, cold_before,
            )
        )  # fmt: skip
    de = scenarios.get("de")
    if de is not None:
        by = de["by"]

        def export(key: str) -> Figure | None:
            if key not in by:
                return None
            v = by[key]
            runs = v["exports"]
            whole = all(r["complete"] for r in runs)
            rows = statistics.median(r["rows"] for r in runs)
            scope = (
                "every row"
                if whole
                else f"the first {rows:,.0f} rows in {de['export_seconds_cap']:g} s"
            )
            return Figure(
                v["export_rows_per_s"],
                f"{v['export_rows_per_s']:,.0f} rows/s ({v['export_cpu_us_per_row']:.1f} µs "
                f"CPU a row; {scope})",
            )

        def paging(key: str) -> Figure | None:
            if key not in by:
                return None
            v = by[key]
            pages = statistics.median(w["pages"] for w in v["walks"])
            return Figure(
                v["page_ms"],
                f"{v['page_ms']:.1f} ms ({v['page_cpu_ms']:.1f} ms CPU) a page, "
                f"first {pages:.0f} pages",
            )

        lines.append(
            _target_row(
                "`DE_Stimme` CSV export ≥ 30,000 rows/s",
                30_000, True, "rows/s", export("gateway") or Figure(None, "–"), export("baseline"),
            )
        )  # fmt: skip
        lines.append(
            _target_row(
                "`DE_Stimme` paging by 1,000 ≤ 50 ms a page",
                50, False, "ms", paging("gateway") or Figure(None, "–"), paging("baseline"),
            )
        )  # fmt: skip
    if "cold" in scenarios:
        cold = _gateway(scenarios["cold"])["upstream_per_query"]
        deep = scenarios["cold"].get("deep_upstream_per_query")
        ok = cold is not None and cold <= 2 and (deep is None or deep <= 4)
        lines.append(
            "| upstream requests per query ≤ relation levels × chunks | cold page + relation: "
            f"{_num(cold, 2)} (bound 2: root + 1 level); cold deep query: {_num(deep, 2)} "
            f"(bound 4: root + 3 levels) | {'yes' if ok else 'no'} | – | – | – |"
        )
    startup = results.get("startup")
    if startup:
        seconds = statistics.median(s["seconds"]["load_gateway"] for s in startup)
        before = results.get("startup_baseline") or []
        beside = "– | –"
        if before:
            slow = statistics.median(s["seconds"]["load_gateway"] for s in before)
            beside = f"{slow:.2f} s | {seconds / slow:.2f}×"
        lines.append(
            f"| schema build for all registers < 2 s | `load_gateway` median {seconds:.2f} s | "
            f"{'yes' if seconds < 2 else 'no'} | – | {beside} |"
        )
    flat = _flatness(results)
    if flat:
        lines.append(
            f"| flat memory for whole-set paging and exports | {flat[0]} | {flat[1]} | – | – | – |"
        )
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
        f"loaded), {rss['after_walks']:.0f} MiB after the warm walks ({walks:+.1f} MiB), "
        f"{rss['after_load']:.0f} MiB after {_gateway(valg)['requests']:,} pages "
        f"from 50 connections at once; FT export of {run['rows']:,} rows: peak growth "
        f"{run['peak_growth_mib']:.1f} MiB ({a:.1f} / {b:.1f} MiB in its two halves)"
    )
    met = abs(walks) < 20 and run["peak_growth_mib"] < 20
    return text, "yes" if met else "no"


def _verdict(
    now: float | None, before: float | None, higher: bool, slack: float | None = None
) -> tuple[str, str]:
    """The ratio and a word; with ``slack``, an absolute difference decides (for figures
    near zero, such as memory growth)."""
    if now is None or before is None:
        return "–", "–"
    if slack is not None:
        change = now - before if higher else before - now
        word = "better" if change > slack else ("**worse**" if change < -slack else "same")
        return f"{now - before:+.1f}", f"same (within ±{slack:g})" if word == "same" else word
    if before == 0:
        return "–", "–"
    ratio = now / before
    better = ratio > 1 + NOISE if higher else ratio < 1 - NOISE
    worse = ratio < 1 - NOISE if higher else ratio > 1 + NOISE
    word = "better" if better else ("**worse**" if worse else "same (within ±10 %)")
    return f"{ratio:.2f}×", word


def _regressions(results: dict[str, Any]) -> list[str]:
    """Gateway against the previous gateway on what the targets do not name."""
    scenarios = results["scenarios"]
    rows: list[tuple[str, float | None, float | None, bool, int]] = []
    # Memory growth is near zero: an absolute difference (MiB) decides, not a ratio.
    slack = {"FT export: peak growth MiB": 5.0}

    def of(scenario: str, key: str, field: str) -> float | None:
        entry = scenarios.get(scenario, {}).get("results", {}).get(key)
        value: float | None = None if entry is None else entry.get(field)
        return value

    for scenario, label in (("deep", "deep query"), ("cold", "cold page + relation")):
        rows.append((f"{label}: req/s", of(scenario, "gateway", "rps"),
                     of(scenario, "baseline", "rps"), True, 0))  # fmt: skip
        rows.append((f"{label}: CPU µs/req", of(scenario, "gateway", "cpu_us"),
                     of(scenario, "baseline", "cpu_us"), False, 0))  # fmt: skip
        rows.append((f"{label}: p99 ms", of(scenario, "gateway", "p99_ms"),
                     of(scenario, "baseline", "p99_ms"), False, 1))  # fmt: skip
    rows.append(("cold page + relation: upstream req/query",
                 of("cold", "gateway", "upstream_per_query"),
                 of("cold", "baseline", "upstream_per_query"), False, 2))  # fmt: skip
    deep_by = scenarios.get("cold", {}).get("deep_upstream_per_query_by", {})
    rows.append(("cold deep query: upstream req/query", deep_by.get("gateway"),
                 deep_by.get("baseline"), False, 2))  # fmt: skip
    startup, before = results.get("startup") or [], results.get("startup_baseline") or []
    if startup and before:
        for phase in ("load_gateway", "imports"):
            rows.append((
                f"schema build: `{phase}` s",
                statistics.median(s["seconds"][phase] for s in startup),
                statistics.median(s["seconds"][phase] for s in before), False, 2,
            ))  # fmt: skip
    for scenario in ("hit", "cached", "deep", "cold"):
        rows.append((f"{scenario}: peak RSS MiB", of(scenario, "gateway", "peak_rss_mib"),
                     of(scenario, "baseline", "peak_rss_mib"), False, 0))  # fmt: skip
    valg = scenarios.get("valg", {}).get("by", {})
    if "baseline" in valg:
        now, prev = valg["gateway"]["rss_mib"], valg["baseline"]["rss_mib"]
        rows.append(
            ("VALG: RSS after the load MiB", now["after_load"], prev["after_load"], False, 0)
        )
    export = scenarios.get("export", {}).get("by", {})
    if "baseline" in export:
        now, prev = export["gateway"][-1], export["baseline"][-1]
        rows.append(("FT export: rows/s", now["rows_per_s"], prev["rows_per_s"], True, 0))
        rows.append(("FT export: peak growth MiB", now["peak_growth_mib"],
                     prev["peak_growth_mib"], False, 1))  # fmt: skip
    de = scenarios.get("de", {}).get("by", {})
    if "baseline" in de:
        rows.append(("DE: first answer s (listing and files read)", de["gateway"]["first_answer_s"],
                     de["baseline"]["first_answer_s"], False, 2))  # fmt: skip
    lines = [
        "| measure | gateway | previous gateway | gateway ÷ previous (or difference) | verdict |",
        "|---|---|---|---|---|",
    ]
    for name, now, prev, higher, digits in rows:
        if now is None and prev is None:
            continue
        ratio, word = _verdict(now, prev, higher, slack.get(name))
        lines.append(f"| {name} | {_num(now, digits)} | {_num(prev, digits)} | {ratio} | {word} |")
    return lines


def _startup(results: dict[str, Any]) -> list[str]:
    runs = results.get("startup") or []
    if not runs:
        return []
    phases = list(runs[0]["seconds"])
    header = [
        "| phase | " + " | ".join(f"run {i + 1} s" for i in range(len(runs))) + " | median s |",
        "|---|" + "---|" * (len(runs) + 1),
    ]
    lines = [
        f"Fresh process each time, bytecode compiled; {runs[0]['registers']} registers, "
        f"{runs[0]['types']} GraphQL types, {runs[0]['root_fields']} root fields. "
        "`load_gateway` is what `gateway serve` does before listening; the other phases are "
        "measured again one by one after it. The gateway, the previous gateway (its own "
        "`schema_build.py`, in its worktree) and the variant below alternate run by run.",
        "",
        *header,
    ]

    def table(found: list[dict[str, Any]], names: Sequence[str]) -> list[str]:
        out = []
        for phase in names:
            values = [r["seconds"][phase] for r in found]
            cells = " | ".join(f"{v:.2f}" for v in values)
            out.append(f"| {phase} | {cells} | {statistics.median(values):.2f} |")
        return out

    lines += table(runs, phases)
    before = results.get("startup_baseline") or []
    if len(before) == len(runs):
        lines += [
            "",
            "The previous gateway:",
            "",
            *header,
            *table(before, list(before[0]["seconds"])),
        ]
    decorated = results.get("startup_decorated") or []
    if len(decorated) == len(runs):
        lines += [
            "",
            "The gateway with every generated class made through `strawberry.type` (a "
            "dataclass per class, as before the gateway gave them their definitions directly):",
            "",
            *header,
            *table(decorated, ("load_gateway", "strawberry_types", "graphql_schema")),
        ]
    return lines


def _valg_export(results: dict[str, Any]) -> list[str]:
    scenarios = results["scenarios"]
    lines: list[str] = []
    valg = scenarios.get("valg")
    if valg is not None:
        lines += [
            f"VALG: {valg['rows']:,} `VALG_Valgresultat` rows in {valg['pages']} pages of 100. "
            "First walk: the gateway's first request for VALG, the signed files downloaded and "
            "verified over SFTP. Warm walks: one client, page after page (milliseconds and the "
            "gateway's CPU a page, medians of the walks). Under load: every page from 50 "
            "connections (wrk); upstream requests a page are directory listings as their "
            "15 s `ttl` lapses.",
            "",
            "| server | first walk s | warm walk s | ms a page | CPU ms a page |"
            " pages/s under load | CPU ms a page under load | p50 ms under load |"
            " upstream req a page | RSS before → first walk → warm walks → load MiB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, v in valg.get("by", {}).items():
            r = valg["results"][key]
            rss = v["rss_mib"]
            lines.append(
                f"| {SERVERS.get(key, key)} | {v['first_walk_s']:.1f} | {v['walk_s']:.2f} | "
                f"{v['page_ms']:.1f} | {v['page_cpu_ms']:.1f} | {_num(r['rps'])} | "
                f"{r['cpu_us'] / 1000:.1f} | {_num(r['p50_ms'], 0)} | "
                f"{_num(r['upstream_per_query'], 3)} | {rss['before']:.0f} → "
                f"{rss['after_first_walk']:.0f} → {rss['after_walks']:.0f} → "
                f"{rss['after_load']:.0f} |"
            )
        lines.append("")
    export = scenarios.get("export")
    if export is not None:
        lines += [
            "Export `GET /FT/v1/download/Stemme.csv` (every row; exports bypass the upstream "
            "cache), one client streaming and discarding:",
            "",
            "| server | rows | MB | seconds | rows/s | gateway CPU s | µs CPU/row |"
            " upstream requests | RSS before MiB | peak growth MiB | growth 1st/2nd half MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        by = export.get("by") or {"gateway": export["runs"]}
        for key, runs in by.items():
            for run in runs:
                a, b = run["halves_growth_mib"]
                lines.append(
                    f"| {SERVERS.get(key, key)} | {run['rows']:,} | {run['bytes'] / 1e6:.1f} | "
                    f"{run['seconds']:.1f} | {run['rows_per_s']:,.0f} | {run['cpu_s']:.2f} | "
                    f"{run['cpu_s'] / run['rows'] * 1e6:.0f} | {run['upstream']} | "
                    f"{run['baseline_mib']:.0f} | {run['peak_growth_mib']:.1f} | "
                    f"{a:.1f}/{b:.1f} |"
                )
        lines.append("")
    de = scenarios.get("de")
    if de is not None:
        lines += [
            "`DE_Stimme` (Offene Wahldaten CSV files from the DE replica, response cache off): "
            "first the listing and files read by one small query (first answer); then the CSV "
            f"export streamed and discarded for at most {de['export_seconds_cap']:g} s "
            "(rows/s over what was read), and paging by 1,000 from the start, at most "
            f"{de['pages_cap']} pages or {de['export_seconds_cap']:g} s (median ms a page; "
            "CPU: the gateway's over the walk). Runs of the two gateways alternate.",
            "",
            "| server | first answer s | run | export rows | of | export s | rows/s |"
            " µs CPU/row | pages | ms a page (median) | ms a page (mean) | CPU ms a page |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, v in de["by"].items():
            for i, (e, w) in enumerate(zip(v["exports"], v["walks"], strict=False), 1):
                total = "–" if e["total"] is None else f"{e['total']:,}"
                lines.append(
                    f"| {SERVERS.get(key, key) if i == 1 else ''} | "
                    f"{v['first_answer_s']:.2f} | {i} | {e['rows']:,} | {total} | "
                    f"{e['seconds']:.1f} | {e['rows_per_s']:,.0f} | {e['cpu_us_per_row']:.1f} | "
                    f"{w['pages']} | {w['page_ms']:.1f} | {w['mean_page_ms']:.1f} | "
                    f"{w['page_cpu_ms']:.1f} |"
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


def _baseline(results: dict[str, Any]) -> str:
    found = results.get("baseline")
    if not found:
        return "The previous gateway was not measured in this run (`--baseline none`)."
    checked = ", ".join(found.get("servers_checked", [])) or "none"
    return (
        f"The previous gateway is commit `{found['commit'][:12]}` (“{found['subject']}”), "
        "run from a git worktree of it with the same virtual environment, its working "
        "directory and `PYTHONPATH` the worktree, so that `gateway`, `resolvers` and every "
        "kind's entry point are imported from it (checked in a process started the same way, "
        f"and the working directory and `PYTHONPATH` of its running servers: {checked}); it "
        "reads its own `registers/` and the same replicas."
    )


def _same_answers(results: dict[str, Any]) -> str:
    scenarios = results["scenarios"]
    parts = [f"{k} {v['same_answers']}" for k, v in scenarios.items() if "same_answers" in v]
    text = "Same answers, gateway vs hand-written server (compared as JSON, `data`): " + (
        ", ".join(parts) or "–"
    )
    previous = [
        f"{k} {v['baseline_same_answers']}"
        for k, v in scenarios.items()
        if "baseline_same_answers" in v
    ]
    if previous:
        text += "; gateway vs previous gateway: " + ", ".join(previous)
    hit = scenarios.get("hit", {})
    if "same_bytes" in hit:
        text += (
            f". Response-cache hit: {hit['response_bytes']:,} bytes; the bytes route sends "
            f"the gateway's bytes: {'yes' if hit['same_bytes'] else 'no'}; the JSON route's "
            f"answer is the same JSON: {'yes' if hit.get('same_json') else 'no'}; the previous "
            f"gateway's answer is the same bytes: "
            f"{'yes' if hit.get('baseline_same_bytes') else 'no'}"
        )
    return text + "."


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
        f"{results.get('seconds', 0)} s. Raw figures: `results.json`."
        + (
            " Phases: " + ", ".join(f"{k} {v} s" for k, v in results["phases"].items()) + "."
            if results.get("phases")
            else ""
        ),
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, Linux {machine['kernel']}, "
        f"Python {machine['python']}; {packages}; {machine['wrk']}.",
        f"Servers under test pinned to core {pin['server_core']}, wrk and the replicas to core "
        f"{pin['load_core']} (taskset). wrk: 1 thread, {settings['connections']} connections, "
        f"{settings['warm']:g} s warm-up, then {settings['runs']} runs of "
        f"{settings['seconds']:g} s per server, servers of a scenario interleaved run by run; "
        "figures are medians (peak RSS: the highest). CPU per request is utime + stime of the "
        "server process over the run and until it is idle again, divided by the requests "
        "answered plus those in flight when wrk stopped (one per connection); it is the "
        "steadiest figure when other work shares the machine "
        f"(load average {load['start'][0]:.2f} at the start, "
        f"{load.get('end', [0.0])[0]:.2f} at the end).",
        "Every server runs under uvicorn with its defaults here (uvloop and httptools, both "
        "locked dependencies; one row of each cheap-wins table hides them), rate limits off "
        "(`[rate_limit] enabled = false`).",
        _baseline(results),
        "",
        "## Targets",
        "",
        "Each target with the gateway's figure, whether it is met, the gap (how far from the "
        "target, and the factor still needed), the previous gateway's figure in the same run "
        "and the gateway's over it. Ratios to a reference are of req/s, both servers measured "
        "in the same scenario, interleaved run by run.",
        "",
        *_targets(results),
        "",
        "## No regression elsewhere",
        "",
        "The gateway against the previous gateway, same run, same scenarios; a change within "
        f"±{NOISE:.0%} is taken for the machine's noise.",
        "",
        *_regressions(results),
        "",
        "## Results",
        "",
        *_results_table(results),
        "",
        "New variables every request: each request carries an extra variable `nonce` with a "
        "number no other request uses (declared nowhere, so it changes no answer), so the "
        "whole-response cache never hits while the upstream cache does. " + _same_answers(results),
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
