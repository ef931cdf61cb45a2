"""`zentra`: run the pipeline, make a sandbox sample, verify and list audit packets.

`zentra run` executes the very Dagster definitions the UI serves, in-process, with the
command-line paths passed as the resource's run config: one code path for CLI and UI.
Exit codes: 0 success, 1 a check failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
#: The largest scenario `zentra sample` writes: the benchmarks' 1M intents, with room.
MAX_INTENTS = 5_000_000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        print(f"zentra: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="zentra", description="Zentra money-movement pipeline")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="materialize the whole asset graph in-process",
                         description="Every input and --home is required, as a flag or its ZENTRA_* variable.")
    run.add_argument("--landing", help="landing folder (callbacks/, intents/, settlements/, deliveries/)")
    run.add_argument("--source-db", help="SQLAlchemy URL of the money core's database (or a SQLite path)")
    run.add_argument("--policies", help="policies YAML")
    run.add_argument("--secrets", help="webhook secrets JSON")
    run.add_argument("--home", help="output folder: warehouse.duckdb and packets/")
    sample = sub.add_parser("sample", help="write a sandbox scenario with every failure case rehearsed")
    sample.add_argument("--out", required=True)
    sample.add_argument("--intents", type=int, default=200)
    sample.add_argument("--seed", type=int, default=7)
    packet = sub.add_parser("packet", help="audit packets")
    psub = packet.add_subparsers(dest="packet_command", required=True, parser_class=_Parser)
    verify = psub.add_parser("verify", help="verify a packet's hashes, Merkle root, signature and chain")
    verify.add_argument("file")
    verify.add_argument("--pubkey", help="trusted public key (PEM); default: the key embedded in the packet")
    lst = psub.add_parser("list", help="tenants, days and versions under a home folder")
    lst.add_argument("--home", help="Zentra home (default: ZENTRA_HOME or var/home)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="zentra: %(levelname)s: %(message)s")
    for handler in logging.getLogger().handlers:  # libraries that set their own loggers to INFO
        handler.setLevel(logging.WARNING)       # (GX's "Created temporary directory ...") stay quiet
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "sample":
            return _sample(args)
        if args.packet_command == "verify":
            return _verify(args)
        return _list(args)
    except KeyboardInterrupt:
        return 130


def _settings(args: argparse.Namespace):
    from zentra_pipelines.settings import Settings

    explicit = {k: getattr(args, k, None) for k in ("landing", "source_db", "policies", "secrets", "home")}
    return Settings.resolve(explicit, os.environ)


def _run(args: argparse.Namespace) -> int:
    from zentra_pipelines.adapters.config import ConfigError
    from zentra_pipelines.adapters.ledger_source import LedgerSourceError
    from zentra_pipelines.adapters.signing import SigningKeyError
    from zentra_pipelines.settings import ENV

    # The bundled sample is the UI's default, never the CLI's: a run given some inputs and
    # not others would mix the sample's ledger or secrets into real evidence.
    missing = [f"--{k.replace('_', '-')} (or {ENV[k]})" for k in ENV if not getattr(args, k) and not os.environ.get(ENV[k])]
    if missing:
        print(f"zentra: error: zentra run needs {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings(args)
    try:
        settings.preflight()
    except (ConfigError, SigningKeyError, LedgerSourceError) as exc:
        print(f"zentra: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run_holding_home(settings)


def _run_holding_home(settings) -> int:
    """The run, with the home held (one run per home) and its warehouse free, both checked
    before any work; each refusal is one line and exit 2."""
    from dagster_project.pipeline import run_pipeline
    from zentra_pipelines.adapters.home_lock import HomeBusyError, exclusive_home
    from zentra_pipelines.adapters.warehouse import Warehouse, WarehouseBusyError

    try:
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # past what preflight can tell (e.g. a read-only file system)
        print(f"zentra: error: cannot use home {settings.home}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with exclusive_home(settings.home):
            with Warehouse(settings.home).connect():
                pass  # a warehouse another process holds open is refused here, before any work
            return run_pipeline(settings)
    except (HomeBusyError, WarehouseBusyError) as exc:  # the latter also when opened mid-run
        print(f"zentra: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _sample(args: argparse.Namespace) -> int:
    from zentra_pipelines.sample import MIN_INTENTS, SampleFolderError, generate_sample

    if not MIN_INTENTS <= args.intents <= MAX_INTENTS:
        print(f"zentra: error: --intents must be between {MIN_INTENTS} and {MAX_INTENTS:,}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    try:
        summary = generate_sample(out, intents=args.intents, seed=args.seed)
    except SampleFolderError as exc:
        print(f"zentra: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a folder that cannot be made or written (read-only, /proc, a file)
        print(f"zentra: error: cannot write the sample to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"sample written to {out.resolve()}")
    for key, value in summary.items():
        if isinstance(value, (int, str)):
            print(f"  {key}: {value}")
    print(f"run it: zentra run --landing {out}/landing --source-db {out}/source.sqlite "
          f"--policies {out}/policies.yaml --secrets {out}/secrets.json --home {out}/home")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from zentra_pipelines.packet_verify import cli_main

    argv = [args.file] + (["--pubkey", args.pubkey] if args.pubkey else [])
    return cli_main(argv)


def _list(args: argparse.Namespace) -> int:
    from zentra_pipelines.adapters.packet_store import list_packets

    home = _settings(args).home
    if not home.is_dir():
        print(f"zentra: error: no Zentra home at {home}", file=sys.stderr)
        return EXIT_USAGE
    rows = list_packets(home)
    if not rows:
        print(f"no packets under {home / 'packets'}")
        return EXIT_OK
    print(f"{'tenant':<20} {'day':<10}  versions")
    for tenant, period, versions in rows:
        print(f"{tenant:<20} {period:<10}  " + ", ".join(f"v{v}" for v in versions))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
