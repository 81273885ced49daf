"""``gitml serve``, ``gitml predict``, ``gitml build-docker``: a model as a REST API, a batch job, an image."""

from __future__ import annotations

import click

from gitml.cli.progress import json_option
from gitml.serving import DEFAULT_SERVE_THREADS

MODEL_HELP = ("MODEL is rf#production, rf@v1.2.0, models:/rf/Production, models:/rf@production, "
              "models:/rf/3, runs:/<run_id>/<path> or a model directory.")
ALLOW_PICKLE_HELP = ("Load the model even if it runs code when loaded (a pickle, a custom PythonModel) and "
                     "gitml did not write it on this machine in this repository. Only for models you trust "
                     "(also: GITML_ALLOW_PICKLE=1).")


def _locate(ctx: click.Context) -> None:
    """Resolve registry and run URIs in the repository -C/--repo names (default: the cwd's)."""
    path = ctx.find_root().obj.get("repo_path")
    if path:
        from gitml.tracking import runs

        runs.set_default_location(path)


@click.command(epilog=MODEL_HELP)
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to accept connections from other machines).")
@click.option("-p", "--port", type=click.IntRange(1, 65535), default=5000, show_default=True, help="Port to listen on.")
@click.option("-w", "--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Worker processes (gunicorn).")
@click.option("--threads", type=click.IntRange(1, 256), default=DEFAULT_SERVE_THREADS, show_default=True,
              help="Threads predicting in each worker (more helps a model whose predict releases the GIL).")
@click.option("--poll", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True,
              help="Seconds between checks of the registry when MODEL names a stage or 'latest'.")
@click.option("--max-body-mb", type=click.FloatRange(0.001, 4096), default=64, show_default=True,
              help="Largest request body accepted (413 above it).")
@click.option("--timeout", type=click.IntRange(1, 86400), default=60, show_default=True,
              help="Seconds before a worker whose event loop stops answering is restarted; also the longest wait "
                   "for the next piece of a request body.")
@click.option("--allow-pickle", is_flag=True, help=ALLOW_PICKLE_HELP)
@click.pass_context
def serve(ctx: click.Context, model: str, host: str, port: int, workers: int, threads: int, poll: float,
          max_body_mb: float, timeout: int, allow_pickle: bool) -> None:
    """Serve MODEL over HTTP with MLflow's scoring protocol (POST /invocations).

    A MODEL given by stage (rf#production) follows the stage: when the tag
    moves, the server loads the new version and switches to it.
    """
    from gitml.serving.server import serve as run

    _locate(ctx)
    run(model, host=host, port=port, workers=workers, threads=threads, poll_seconds=poll,
        max_body=int(max_body_mb * 1024 * 1024), timeout=timeout, allow_pickle=allow_pickle or None)


@click.command(epilog=MODEL_HELP)
@click.argument("model")
@click.option("-i", "--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="Input file: .csv, .json (scoring payload) or .parquet.")
@click.option("-o", "--output", "output_path", default=None, type=click.Path(dir_okay=False),
              help="Output file: .csv, .json or .parquet (default: JSON on stdout).")
@click.option("-t", "--content-type", type=click.Choice(["json", "csv", "parquet"]), default=None,
              help="Input format, when the file's extension does not tell.")
@click.option("--allow-pickle", is_flag=True, help=ALLOW_PICKLE_HELP)
@click.pass_context
def predict(ctx: click.Context, model: str, input_path: str, output_path: str | None, content_type: str | None,
            allow_pickle: bool) -> None:
    """Score a file with MODEL (batch prediction)."""
    from gitml.serving import batch, protocol

    _locate(ctx)
    kind = {"json": protocol.CONTENT_TYPE_JSON, "csv": protocol.CONTENT_TYPE_CSV,
            "parquet": protocol.CONTENT_TYPE_PARQUET}.get(content_type or "")
    batch.predict_file(model, input_path, output_path, kind, allow_pickle=allow_pickle or None)
    if output_path:
        click.echo(f"Predictions written to {output_path}", err=True)


@click.command("build-docker", epilog=MODEL_HELP)
@click.argument("model")
@click.option("-d", "--directory", "out_dir", required=True, type=click.Path(file_okay=False),
              help="New (or empty) directory for the build context.")
@click.option("--allow-pickle", is_flag=True,
              help="Set GITML_ALLOW_PICKLE=1 in the image, so it loads a model that runs code when loaded "
                   "(a pickle, a custom PythonModel). Only for models you trust.")
@json_option("Print the build context's directory as JSON.")
@click.pass_context
def build_docker(ctx: click.Context, model: str, out_dir: str, allow_pickle: bool, as_json: bool) -> None:
    """Write a Docker build context that serves MODEL: then `docker build DIR`."""
    from gitml.serving.docker import build_context

    _locate(ctx)
    out = build_context(model, out_dir, allow_pickle=allow_pickle)
    if as_json:
        from gitml.cli.output import echo_json

        echo_json({"model": model, "directory": str(out)})
        return
    click.echo(f"Build context written to {out}\n  docker build -t my-model {out}\n"
               "  docker run -p 8080:8080 my-model")
