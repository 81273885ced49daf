"""``gitml ui``: the web viewer."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The viewer has no login: 0.0.0.0 shows every run to your network.")
@click.option("-p", "--port", type=click.IntRange(1, 65535), default=5050, show_default=True, help="Port to listen on.")
@click.option("-w", "--workers", type=click.IntRange(1, 32), default=3, show_default=True,
              help="Worker processes (gunicorn).")
@click.option("--allowed-hosts", default=None, metavar="NAMES",
              help="Comma-separated host names the viewer answers to ('*': any). Default: the loopback names "
                   "when --host is a loopback address (a page that rebinds its DNS name to 127.0.0.1 gets no "
                   "data), any otherwise.")
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, workers: int, allowed_hosts: str | None) -> None:
    """Browse runs, metric charts, artifacts, commits, diffs and the model registry in a web browser.

    Read-only: the viewer never changes the repository. It reads runs, notes
    and registry tags straight from git, so it shows what another process
    logs as it lands (a running run's page updates itself).
    """
    from gitml.webview.server import is_loopback, serve

    def ready(server: object) -> None:
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"gitml ui: http://{shown}:{port}/  (Ctrl+C to stop)", err=True)
        if not is_loopback(host):
            click.echo(f"gitml ui: listening on {host}, with no login: whoever reaches this machine can read "
                       "every run, artifact and model of the repository", err=True)

    hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()] if allowed_hosts else None
    serve(ctx.find_root().obj.get("repo_path"), host=host, port=port, workers=workers, hosts=hosts, ready=ready)
