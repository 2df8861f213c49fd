"""``cnnlab lab``: the convolution lab as a live web page, without a model (``cnnlab serve`` has it at /lab too)."""

from __future__ import annotations

import click


@click.command()
@click.argument("image", required=False, type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
def lab(image: str | None, host: str, port: int) -> None:
    """Serve the convolution lab: a page to filter a picture as a Conv2D and a pooling layer do (needs cnnlab[web]).

    Open http://HOST:PORT/lab: choose a picture (IMAGE, the default 512×512 photo, an upload or a
    drawing), a kernel (named, or a grid of numbers up to 7×7), strides, padding, pooling and colour
    mode, and watch the output, its shape and the formula that gave it; step through a crop cell by
    cell. Every number comes from the API (documented at /docs), which computes what Keras does.
    Ctrl-C stops the server.
    """
    from cnnlab.serve.lab_api import create_lab_app
    from cnnlab.serve.web import run_server  # first: without the web extra it says what to install

    app = create_lab_app(image)  # a bad IMAGE is reported before the banner: one line, as every error
    click.echo(f"cnnlab: the convolution lab on http://{host}:{port}/lab (API docs: /docs); Ctrl-C stops", err=True)
    run_server(app, host=host, port=port)


COMMANDS = [lab]
