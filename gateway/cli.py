"""The ``gateway`` command: serve, demo, validate, schema, relations-skeleton, dls-export,
pin-host-key."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from gateway.dls import loader_for
from gateway.dls.descriptors import generate_relations, load_registers, relations_skeleton
from gateway.exports.files import ExportFileSettings
from gateway.http.auth import DEMO_KEYS, AuthSettings
from gateway.http.config import HttpSettings, Settings
from gateway.http.observe import JsonFormatter
from gateway.http.ratelimit import RateLimitSettings
from gateway.model.datamodel import Register
from gateway.model.errors import DescriptorError, GatewayError
from gateway.sources.kinds import DEMO_REPLAY_ENV, Kind, kinds

if TYPE_CHECKING:
    from gateway.history.store import HistoryStore

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTERS = ROOT / "registers"
DEFAULT_SCHEMA = ROOT / "schema.graphql"

# The demo's rate limit: a client may page every example entity (FT_Stemme, some 40,000
# rows, is 399 pages of 100) in one go, then goes on at the rate.
DEMO_RATE = 600
DEMO_BURST = 3000
DEFAULT_REPLAY = 60.0
# The demo's history: kept across its restarts (the recordings are imported once).
DEMO_HISTORY = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "dls-gateway"
    / "demo-history.sqlite"
)
log = logging.getLogger("gateway.cli")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate register descriptors; print a DLS-style report."""
    previous = None
    if args.previous:
        previous = {args.previous_register: json.loads(Path(args.previous).read_text("utf-8"))}
    chosen = str(args.previous_registers)
    against: Path | str | None = None if chosen == "none" else chosen
    if chosen not in ("none", "git"):
        against = Path(chosen)
        if not against.is_dir():
            _err(f"--previous-registers {against}: no such folder")
            return 2
    report = load_registers(Path(args.path), previous_relations=previous, previous=against)
    _out(report.render())
    return 0 if report.ok else 1


def cmd_schema(args: argparse.Namespace) -> int:
    """Write the SDL of the schema served at /graphql."""
    from gateway.http.app import load_gateway

    gateway = load_gateway(Settings(registers_dir=Path(args.registers)))
    sdl = gateway.schema_for(args.endpoint).as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl, encoding="utf-8")
        _out(f"wrote {args.output}")
    return 0


def cmd_skeleton(args: argparse.Namespace) -> int:
    """Print (or write) a Relations.json skeleton: from the XMI (DLS) or the native model."""
    if args.registers is not None:
        document, report = generate_relations(Path(args.registers), args.register)
        _err(report.render())
        if document is None:
            return 1
        count = sum(len(v["Relations"]) for v in document["RelationVersions"])
        return _write_document(document, args.output, f"{count} relations")
    folder = Path(args.register)
    if not folder.is_dir():
        _err(f"{folder}: no such register folder (or give --registers FOLDER and a register name)")
        return 2
    rc_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("rc"))
    if len(rc_dirs) != 1 or not (rc_dirs[0] / "Source.json").is_file():
        _err(
            f"{folder}: expected one rcNNNNN folder with a Source.json naming the datamodel; "
            f"for a DLS delivery use: gateway relations-skeleton {folder.name} "
            f"--registers {folder.parent}"
        )
        return 2
    source = json.loads((rc_dirs[0] / "Source.json").read_text("utf-8"))
    spec = source["datamodel"]
    model = loader_for(spec["format"])(
        rc_dirs[0] / "2. Datamodel" / spec["path"], folder.name, spec
    )
    document = relations_skeleton(model, rc_dirs[0].name)
    return _write_document(document, args.output, f"{len(model.navigation)} relations")


def _loaded(registers_dir: Path, name: str) -> dict[str, Register] | None:
    """The registers of a folder by name, if ``name`` is among them (else the report, on stderr)."""
    report = load_registers(registers_dir)
    by_name = {r.name: r for r in report.registers}
    if name not in by_name:
        _err(report.render())
        _err(f"register {name!r} is not loaded; loaded: {', '.join(sorted(by_name))}")
        return None
    return by_name


def cmd_dls_export(args: argparse.Namespace) -> int:
    """Write a register's datamodel as a DLS pair (XSD in the DLS style + EA XMI 2.1)."""
    from gateway.dls.dls_export import export_register, write_pair

    by_name = _loaded(Path(args.registers), args.register)
    if by_name is None:
        return 1
    register = by_name[args.register]
    pair = export_register(register, by_name)
    folder = Path(args.out) if args.out else Path(register.path) / "2. Datamodel"
    for path in write_pair(pair, folder):
        _out(f"wrote {path}")
    return 0


def _write_document(document: Any, output: str, what: str) -> int:
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if output == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(output).write_text(text + "\n", encoding="utf-8")
        _out(f"wrote {output} ({what})")
    return 0


SWITCH_INTERVAL = 0.001


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options that keep the gateway's limits whole.

    The client address is the app's business (:class:`gateway.http.ratelimit.TrustedProxyMiddleware`
    believes forwarding headers from ``trusted_proxies`` only): uvicorn must not rewrite it
    from ``X-Forwarded-For``, as it does by default for 127.0.0.1. Header sizes are checked
    by the app for any server; with h11, the parser stops at the same size (plus room for a
    long GET request line) before buffering more.
    """
    return {
        "proxy_headers": False,
        "forwarded_allow_ips": ",".join(settings.trusted_proxies),
        "h11_max_incomplete_event_size": settings.max_header_bytes + 256 * 1024,
    }


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the gateway per the configuration file and environment."""
    from gateway.http.app import create_app

    settings = Settings.load(Path(args.config) if args.config else None)
    if args.registers:
        settings = settings.merged({"registers": args.registers}, base=Path.cwd())
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    if args.log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=args.log_level.upper(), handlers=[handler], force=True)
    app = create_app(settings)
    # The schemas and datamodels are some 200,000 objects that live as long as the process:
    # moving them out of the collector's sight keeps full collections short under load.
    gc.collect()
    gc.freeze()
    # Worker threads (exports, large files) hand the interpreter back to the event loop
    # after this interval: 1 ms instead of Python's 5 keeps small requests quick beside them.
    sys.setswitchinterval(SWITCH_INTERVAL)
    # On SIGTERM/SIGINT uvicorn stops accepting, lets in-flight queries finish (up to the
    # grace period), then runs the lifespan shutdown that closes upstream connections.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=args.log_level,
        log_config=None if args.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=args.grace,
        access_log=False,
        **server_options(settings),
    )
    return 0


def _register_kind(args: argparse.Namespace) -> tuple[Register, Kind | None] | None:
    """The register ``args.register`` names (loaded from ``args.registers``) and its kind;
    None (after saying why) when it does not load."""
    by_name = _loaded(Path(args.registers), args.register)
    if by_name is None:
        return None
    register = by_name[args.register]
    return register, kinds().get(str(register.source.get("kind", "")))


def cmd_pin_host_key(args: argparse.Namespace) -> int:
    """Fetch and show an SSH upstream's host key; pin it once the operator accepts it."""
    loaded = _register_kind(args)
    if loaded is None:
        return 2
    register, found = loaded
    if found is None or found.host_keys is None:
        _err(f"register {register.name}: its kind reaches no SSH server; no host key to pin")
        return 2
    try:
        key = asyncio.run(found.host_keys.fetch(register.source))
    except GatewayError as exc:
        _err(exc.message)
        return 1
    _out(f"{key.host} presents a {key.algorithm} host key")
    _out(f"fingerprint {key.fingerprint}")
    _out("compare it with the fingerprint the server's operator publishes before accepting it")
    accepted = args.write
    if not accepted and sys.stdin.isatty():
        answer = input(f"pin this key for {register.name}? [y/N] ")
        accepted = answer.strip().lower() in ("y", "yes")
    if not accepted:
        _out("not pinned (accept it interactively, or run again with --write)")
        return 1
    written = found.host_keys.pin(Path(register.path), key)
    _out(f"pinned: {key.line}")
    _out(f"wrote {written}")
    return 0


def store_where(url: str) -> str:
    """A history URL as shown (without its password)."""
    from gateway.history.store import HistoryStore

    return HistoryStore(None, url=url).where


def cmd_history_import(args: argparse.Namespace) -> int:
    """Load an archive of a register's upstream into the history store."""
    loaded = _register_kind(args)
    if loaded is None:
        return 2
    register, found = loaded
    if found is None or found.history_import is None:
        _err(f"register {register.name}: its kind cannot import an archive into the history")
        return 2
    target = args.history
    url = None
    if target is not None and str(target).startswith(("postgresql://", "postgres://")):
        target, url = None, str(args.history)
    if target is None and url is None and args.config is not None:
        settings = Settings.load(Path(args.config))
        target, url = settings.history_path, settings.history_url
    if target is None and url is None:
        _err(
            "name the history database: --history PATH or URL, or [history] path or url in --config"
        )
        return 2
    source = Path(args.path)
    if not source.exists():
        _err(f"{source}: no such folder or file")
        return 2

    def progress(count: int) -> None:
        _out(f"{register.name}: {count} versions read")

    async def run() -> tuple[int, int]:
        from gateway.history.store import HistoryStore

        store = HistoryStore(None if target is None else Path(target), url=url)
        await store.start()
        try:
            assert found is not None
            assert found.history_import is not None
            read = await found.history_import(store, register, source, progress)
            return read, await store.count(register.name)
        finally:
            await store.aclose()

    try:
        read, kept = asyncio.run(run())
    except GatewayError as exc:
        _err(exc.message)
        return 1
    where = target if url is None else store_where(url)
    _out(f"{register.name}: {read} versions read from {source}; {kept} kept in {where}")
    return 0


def _by_kind(registers_dir: Path) -> dict[Kind, dict[str, Mapping[str, Any]]]:
    """The registers of a folder grouped by their kind (name → ``Source.json``)."""
    report = load_registers(registers_dir)
    if not report.ok:
        raise DescriptorError(report.render())
    grouped: dict[Kind, dict[str, Mapping[str, Any]]] = {}
    for register in report.registers:
        found = kinds().get(str(register.source.get("kind", "")))
        if found is not None:
            grouped.setdefault(found, {})[register.name] = register.source
    return grouped


async def _demo(args: argparse.Namespace) -> int:
    from gateway.http.app import create_app
    from gateway.http.server import serve_asgi

    handles: list[Any] = []
    overrides: dict[str, Any] = {}
    served: list[str] = []
    rows: list[str] = []  # the registers whose kind records row versions
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The replicas that record an election night replay it when --replay asks (else they
    # start with their complete recording); a bad spec is refused by the first that reads it.
    if args.replay is not None:
        os.environ[DEMO_REPLAY_ENV] = args.replay
    else:
        os.environ.pop(DEMO_REPLAY_ENV, None)
    try:
        for kind, registers in _by_kind(Path(args.registers)).items():
            if kind.replica is None:
                continue
            handle = await kind.replica(registers)
            handles.append(handle)
            # A replica on loopback needs no politeness towards a public service.
            overrides.update({k: {**dict(v), "rate": 0} for k, v in handle.overrides.items()})
            served.extend(registers)
            if kind.source.records_rows:
                rows.extend(registers)
            _out(f"replica  {', '.join(registers):12} {handle.address}")
        history = None if args.history in ("", "none") else Path(args.history)
        settings = Settings(
            registers_dir=Path(args.registers),
            sources=overrides,
            include=tuple(served),
            history=history is not None,
            history_path=history,
            # Row-recording registers (FT) are recorded (read whole on first start, then
            # followed): their Events, registreringstid and deltas answer at once.
            history_record=tuple(rows),
            auth=AuthSettings.demo(),
            rate_limit=demo_rate_limit(args.rate_limit, args.burst),
            # Front-end dev servers on this machine (any port) may call the demo.
            http=HttpSettings(cors_localhost=True),
            # Their annex downloads written on their schedule (listed in /catalog.json).
            exports=ExportFileSettings(scheduled=tuple(rows)),
        )
        app = create_app(settings)
        server = await serve_asgi(app, args.host, args.port)
        _out(f"gateway  GraphQL      {server.url}/graphql")
        for register in served:
            _out(f"         {register:12} {server.url}/{register}/v1")
        _out(
            "API keys (header X-API-Key, ?apiKey= or a WebSocket's connection_init payload; "
            "demo only): " + ", ".join(DEMO_KEYS)
        )
        _out("without a key a caller has level 0 (public data)")
        if settings.rate_limit is not None:
            limit = settings.rate_limit
            _out(
                f"rate limit per key, or per address without one: {limit.per_key} a minute, "
                f"bursts of {limit.burst}"
            )
        if args.replay is not None:
            _out(f"replaying election night (--replay {args.replay or DEFAULT_REPLAY})")
        importing = None
        if history is not None:
            _out(f"history  {history}")
            importing = asyncio.create_task(
                _demo_history(history, handles, args.registers, app.state.gateway.history)
            )
        _out("Ctrl-C stops the demo.")
        await stop.wait()
        if importing is not None:
            importing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await importing
        _out("stopping")
        await server.stop()
    finally:
        for handle in reversed(handles):
            with contextlib.suppress(Exception):
                await handle.stop()
    return 0


async def _demo_history(
    path: Path, handles: list[Any], registers_dir: str, serving: HistoryStore | None = None
) -> None:
    """On first start, the shipped recordings into the demo's history: every replica that
    can write a mirror of its upstream (the VALG night, every version signed; the ČSÚ batches;
    the German files), imported by its kind, in the background while the demo serves; then
    ``serving`` (the gateway's store) writes their events."""
    from gateway.history.store import HistoryStore

    store = HistoryStore(path)
    await store.start()
    try:
        report = load_registers(Path(registers_dir))
        loaded = {r.name: r for r in report.registers}
        imported = False
        for handle in handles:
            mirror = getattr(handle, "mirror", None)
            if mirror is None:
                continue
            # The registers its mirror holds (a handle may serve more than it recorded).
            names: Sequence[str] = tuple(
                getattr(handle, "mirrored", ()) or getattr(handle, "registers", ())
            )
            wanted = []
            for name in names:
                register = loaded.get(name)
                kind = kinds().get(str(register.source.get("kind", ""))) if register else None
                if register is None or kind is None:
                    continue
                if kind.history_import is None or await store.count(name) > 0:
                    continue  # nothing to import, or imported on an earlier start
                wanted.append((register, kind.history_import))
            if not wanted:
                continue
            imported = True
            with tempfile.TemporaryDirectory(prefix="dls-demo-mirror-") as folder:
                await asyncio.to_thread(mirror, Path(folder))
                for register, history_import in wanted:
                    _out(f"history  {register.name}: importing the recording (first start)")

                    def progress(count: int, name: str = register.name) -> None:
                        if count % 5000 == 0:
                            _out(f"history  {name}: {count} versions")

                    count = await history_import(store, register, Path(folder), progress)
                    _out(f"history  {register.name}: {count} versions kept")
        if imported and serving is not None:
            # The gateway's own store turns what was imported into events now.
            await serving.describe_kept()
            _out("history  the recordings' events are written")
    except Exception:  # the demo serves on without a history
        log.exception("demo: the recordings could not be imported into the history")
    finally:
        await store.aclose()


def demo_rate_limit(per_minute: int, burst: int) -> RateLimitSettings | None:
    """The demo's rate limit (None: off)."""
    if per_minute <= 0:
        return None
    return RateLimitSettings(per_key=per_minute, per_ip=per_minute, burst=burst)


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the replicas on loopback and a gateway wired to them."""
    return asyncio.run(_demo(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the gateway")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--registers", help="registers folder (overrides the configuration)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--log-format", choices=["json", "text"], default="json")
    serve.add_argument("--grace", type=float, default=30, help="seconds for in-flight queries")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="replicas of the upstreams plus a gateway, on loopback")
    demo.add_argument("--registers", default=str(DEFAULT_REGISTERS))
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument(
        "--rate-limit",
        type=int,
        default=DEMO_RATE,
        help=f"requests per minute per caller, key or address (default {DEMO_RATE}); 0 = off",
    )
    demo.add_argument(
        "--burst",
        type=int,
        default=DEMO_BURST,
        help=f"requests a caller may send at once before the rate applies (default {DEMO_BURST})",
    )
    demo.add_argument(
        "--replay",
        nargs="?",
        const="",
        metavar="SPEED|START/END@SPEED",
        help="replay election night (VALG and CZPREZ) instead of starting complete: alone at "
        f"{DEFAULT_REPLAY:g}x, SPEED times real time, or a window of ISO 8601 UTC instants "
        "(VALG; CZPREZ replays its batches from the first at SPEED)",
    )
    demo.add_argument(
        "--history",
        default=str(DEMO_HISTORY),
        help="the demo's history database, where the shipped recordings are imported on "
        "first start ('none': no history)",
    )
    demo.set_defaults(func=cmd_demo)

    validate = sub.add_parser("validate", help="validate register descriptors")
    validate.add_argument("path", nargs="?", default=str(DEFAULT_REGISTERS))
    validate.add_argument("--previous", help="the previous Relations.json to compare with")
    validate.add_argument("--previous-register", default="", help="the register it belongs to")
    validate.add_argument(
        "--previous-registers",
        default="git",
        help="the previous registers folder to detect breaking datamodel changes against; "
        "'git' (default) compares with the version committed at HEAD, 'none' skips it",
    )
    validate.set_defaults(func=cmd_validate)

    schema = sub.add_parser("schema", help="write the generated SDL")
    schema.add_argument("-o", "--output", default=str(DEFAULT_SCHEMA))
    schema.add_argument("--registers", default=str(DEFAULT_REGISTERS))
    schema.add_argument("--endpoint", default="/graphql")
    schema.set_defaults(func=cmd_schema)

    skeleton = sub.add_parser(
        "relations-skeleton", help="a Relations.json skeleton from a datamodel"
    )
    skeleton.add_argument(
        "register", help="a register name with --registers (DLS, from the XMI), else its folder"
    )
    skeleton.add_argument(
        "--registers", help="the registers folder; targets in other registers resolve over it"
    )
    skeleton.add_argument("-o", "--output", default="-")
    skeleton.set_defaults(func=cmd_skeleton)

    export = sub.add_parser("dls-export", help="write a register's datamodel as a DLS XSD + XMI")
    export.add_argument("register", help="the register's name (FT)")
    export.add_argument("--registers", default=str(DEFAULT_REGISTERS))
    export.add_argument("--out", help="folder to write to (default: the register's 2. Datamodel/)")
    export.set_defaults(func=cmd_dls_export)

    pin = sub.add_parser(
        "pin-host-key", help="fetch, show and pin the host key of a register's SSH upstream"
    )
    pin.add_argument("register", help="the register's name (VALG)")
    pin.add_argument("--registers", default=str(DEFAULT_REGISTERS))
    pin.add_argument(
        "--write",
        action="store_true",
        help="pin the key without asking (where the register's Source.json says: the file "
        "knownHosts names, else knownHosts itself)",
    )
    pin.set_defaults(func=cmd_pin_host_key)

    history = sub.add_parser("history", help="the history store: what each register said when")
    history_sub = history.add_subparsers(dest="history_command", required=True)
    load = history_sub.add_parser(
        "import", help="load an archive of a register's upstream (a mirror folder or a tarball)"
    )
    load.add_argument("register", help="the register's name (VALG)")
    load.add_argument("path", help="the archive: a folder laid out as the upstream, or a tar file")
    load.add_argument("--registers", default=str(DEFAULT_REGISTERS))
    load.add_argument("--config", help="the gateway's TOML configuration ([history] path)")
    load.add_argument(
        "--history",
        help="the history database: a file, or a postgresql:// URL (default: [history] path "
        "or url)",
    )
    load.set_defaults(func=cmd_history_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gateway`` command."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except DescriptorError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
