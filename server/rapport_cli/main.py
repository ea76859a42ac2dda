"""``rapport``: run the server, migrate its database, manage keys."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="rapport",
    help="Rapport: consent-based connections between businesses and people.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    database_url: Annotated[
        str | None, typer.Option(envvar="RAPPORT_DATABASE_URL", help="SQLAlchemy async URL.")
    ] = None,
    migrate: Annotated[
        bool | None,
        typer.Option(
            "--migrate/--no-migrate",
            help="Apply migrations first (default: yes for SQLite, no for PostgreSQL).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Start the HTTP server (embedded SQLite by default)."""
    import os

    import uvicorn
    from rapport_server.config import Settings

    if database_url:
        os.environ["RAPPORT_DATABASE_URL"] = database_url
    if migrate is not None:
        os.environ["RAPPORT_MIGRATE_ON_START"] = "true" if migrate else "false"
    os.environ.setdefault("RAPPORT_PUBLIC_URL", f"http://{host}:{port}")
    settings = Settings()
    if workers > 1 and (settings.migrate_on_start or settings.is_sqlite):
        # Migrate once here, not in every worker.
        from rapport_server.migrate import upgrade

        asyncio.run(upgrade(settings.database_url))
        os.environ["RAPPORT_MIGRATE_ON_START"] = "false"
    typer.echo(f"Rapport on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    typer.echo(f"Database: {_redact(settings.database_url)}")
    uvicorn.run(
        "rapport_server.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to REVISION.")] = False,
    database_url: Annotated[
        str | None, typer.Option(envvar="RAPPORT_DATABASE_URL", help="SQLAlchemy async URL.")
    ] = None,
) -> None:
    """Upgrade (or with --down, downgrade) the database schema."""
    from rapport_server.config import Settings
    from rapport_server.migrate import downgrade, upgrade

    url = database_url or Settings().database_url
    asyncio.run(downgrade(url, revision) if down else upgrade(url, revision))
    typer.echo(f"{'Downgraded' if down else 'Upgraded'} {_redact(url)} to {revision}")


@app.command()
def keygen(
    out: Annotated[Path, typer.Option("--out", "-o", help="Key file to write (0600).")] = Path(
        "rapport-key.json"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Create a new Ed25519 key and print its did:key."""
    from rapport_client.keys import KeyFileError, generate_key, save_key

    key = generate_key()
    try:
        save_key(key, out, overwrite=force)
    except KeyFileError as exc:
        typer.echo(f"{exc}; use --force to overwrite", err=True)
        raise typer.Exit(1) from None
    typer.echo(key.did)


@app.command()
def worker(
    database_url: Annotated[
        str | None, typer.Option(envvar="RAPPORT_DATABASE_URL", help="SQLAlchemy async URL.")
    ] = None,
) -> None:
    """Run a webhook delivery worker (start `rapport serve` with RAPPORT_RUN_WORKER=false
    to leave delivery to these processes; run several against PostgreSQL)."""
    import os

    from rapport_server.config import Settings
    from rapport_server.webhooks.runner import run_worker

    if database_url:
        os.environ["RAPPORT_DATABASE_URL"] = database_url
    settings = Settings()
    typer.echo(f"Rapport webhook worker on {_redact(settings.database_url)}")
    asyncio.run(run_worker(settings))


def _install_party_commands() -> None:
    # Party commands (through the SDK) and the demo live in their own modules.
    from rapport_cli import demo, party

    party.install(app)
    app.command()(demo.demo)


_install_party_commands()

if __name__ == "__main__":
    app()
