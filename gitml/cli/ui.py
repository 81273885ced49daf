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
@click.option("--read-only", is_flag=True, help="No edits from the browser (the default off a loopback address).")
@click.option("--allow-writes", is_flag=True,
              help="Allow edits although --host is not a loopback address: whoever reaches the port can edit.")
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, workers: int, allowed_hosts: str | None, read_only: bool,
       allow_writes: bool) -> None:
    """Browse runs, metric charts, artifacts, commits, diffs and the model registry in a web browser.

    It reads runs, notes and registry tags straight from git, so it shows
    what another process logs as it lands (a running run's page updates
    itself). On 127.0.0.1 (the default) it also edits, as the CLI does: rename,
    describe, tag, delete or restore a run; set a registry stage or alias;
    comment on a version. Each edit is a git write like the CLI's, from a form
    of the viewer's own pages only (POST with a CSRF token). --read-only turns
    edits off; on another address they are off unless --allow-writes.
    """
    from gitml.webview.server import is_loopback, serve, writes_allowed

    if read_only and allow_writes:
        raise click.UsageError("--read-only and --allow-writes contradict each other: pick one")
    writes = writes_allowed(host, read_only, allow_writes)

    def ready(server: object) -> None:
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"gitml ui: http://{shown}:{port}/  (Ctrl+C to stop)", err=True)
        if not is_loopback(host):
            click.echo(f"gitml ui: listening on {host}, with no login: whoever reaches this machine can read "
                       "every run, artifact and model of the repository"
                       + (", and edit them" if writes else " (edits off)"), err=True)

    hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()] if allowed_hosts else None
    serve(ctx.find_root().obj.get("repo_path"), host=host, port=port, workers=workers, hosts=hosts, ready=ready,
          writes=writes)
