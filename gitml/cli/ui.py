"""``gitml ui``: the web viewer."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The viewer has no login: 0.0.0.0 shows every run to your network.")
@click.option("-p", "--port", type=int, default=5050, show_default=True, help="Port to listen on.")
@click.option("-w", "--workers", type=click.IntRange(1, 32), default=3, show_default=True,
              help="Worker processes (gunicorn).")
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Browse runs, metric charts, artifacts, commits, diffs and the model registry in a web browser.

    Read-only: the viewer never changes the repository. It reads runs, notes
    and registry tags straight from git, so it shows what another process
    logs as it lands (a running run's page updates itself).
    """
    from gitml.webview.server import serve

    def ready(server: object) -> None:
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"gitml ui: http://{shown}:{port}/  (Ctrl+C to stop)", err=True)

    serve(ctx.find_root().obj.get("repo_path"), host=host, port=port, workers=workers, ready=ready)
