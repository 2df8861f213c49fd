"""Commands that use a trained model: predict, export, serve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from cnnlab.errors import CnnlabError

SIZE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}


@click.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="How many of the most probable classes to print.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object per file: file, label (class name; null when blank), probabilities "
    "(class name -> probability; null when blank).",
)
@click.option(
    "--show",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Write the input the model saw (28×28 for MNIST) as DIR/<image's name>.png.",
)
def predict(run: str, images: tuple[str, ...], top_k: int, as_json: bool, show: str | None) -> None:
    """Predict the class of each of IMAGES (PNG, JPEG, BMP, GIF, WebP) with the model of RUN.

    Pictures of any size work, colour or gray, dark ink on light paper or light on dark: digit
    models get MNIST's own preprocessing (ink cropped, fitted in 20×20, centred by mass in 28×28),
    Fashion-MNIST models the fit to 28×28, others a resize to their input size.
    """
    from cnnlab.data.digits import BlankImageError
    from cnnlab.data.images import open_image
    from cnnlab.serve.predict import predict_image
    from cnnlab.training.run import Run

    model = Run(run).load_model()
    shown_dir = Path(show) if show else None
    if shown_dir is not None:
        shown_dir.mkdir(parents=True, exist_ok=True)
    names = model.class_names
    failures = 0
    for file in images:
        try:
            prediction = predict_image(model, open_image(file))
        except BlankImageError as blank:
            click.echo(
                json.dumps({"file": file, "label": None, "probabilities": None})
                if as_json
                else f"{file}: {blank}; nothing to predict"
            )
            continue
        except CnnlabError as problem:  # one unreadable picture does not stop the others
            click.echo(f"cnnlab: error: {problem}", err=True)
            failures += 1
            continue
        probabilities = prediction.probabilities.tolist()
        if as_json:
            click.echo(
                json.dumps(
                    {"file": file, "label": names[prediction.label], "probabilities": dict(zip(names, probabilities))}
                )
            )
        else:
            width = max(len(name) for name in names)
            ranked = sorted(range(len(names)), key=lambda k: -probabilities[k])[:top_k]
            click.echo(f"{file}: {names[prediction.label]}")
            for k in ranked:
                click.echo(f"  {names[k].ljust(width)}  {probabilities[k]:.4f}")
        if shown_dir is not None:
            _write_png(shown_dir / f"{Path(file).stem}.png", prediction.model_input)
    if failures:
        raise SystemExit(1)


def _write_png(path: Path, pixels) -> None:
    """uint8 (H, W, C) pixels as a PNG, written atomically."""
    import io

    from PIL import Image

    from cnnlab.files import write_atomic

    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())


@click.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option(
    "--onnx",
    "onnx_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the model here as ONNX: input 'image' float32 (N, C, H, W) in [0, 1]; outputs 'logits' "
    "and 'probabilities'.",
)
@click.option("--opset", type=click.IntRange(min=17), default=18, show_default=True, help="ONNX opset version.")
@click.option(
    "--keras",
    "keras_file",
    type=click.Path(dir_okay=False),
    metavar="FILE.keras",
    help="Write the model here as a Keras 3 .keras file (Keras's layer names, configs and weight layouts).",
)
def export(run: str, onnx_file: str | None, opset: int, keras_file: str | None) -> None:
    """Export the model of RUN to ONNX (checked against PyTorch with onnxruntime; needs cnnlab[onnx]) or to Keras."""
    if onnx_file is None and keras_file is None:
        raise click.UsageError("give --onnx FILE, --keras FILE.keras, or both")
    from cnnlab.training.run import Run

    model = Run(run).load_model()
    if onnx_file is not None:
        from cnnlab.serve.onnx import TOLERANCE, export_onnx

        difference = export_onnx(model, onnx_file, opset=opset)
        size = Path(onnx_file).stat().st_size
        click.echo(
            f"wrote {onnx_file} ({size / 1e6:.1f} MB); onnxruntime matches PyTorch within {difference:.1e} "
            f"(limit {TOLERANCE:.0e})"
        )
    if keras_file is not None:
        from cnnlab.nn.keras_files import save_keras

        save_keras(model, keras_file)
        click.echo(
            f"wrote {keras_file} ({Path(keras_file).stat().st_size / 1e6:.1f} MB): load it with keras.saving.load_model"
        )


def parse_size(context, parameter, text: str) -> int:
    """--max-upload: '10MB' -> 10_000_000, '512KiB' -> 524_288, '2000' -> 2000 bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*", text, re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise click.BadParameter(f"expected a size such as 10MB, 512KB or 2000000. Received: {text!r}")
    return int(float(match.group(1)) * SIZE_UNITS[(match.group(2) or "").upper()])


@click.command()
@click.argument("run", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--max-upload",
    default="10MB",
    show_default=True,
    metavar="SIZE",
    callback=parse_size,
    help="Largest request body accepted (B, KB, MB, KiB, MiB...); larger ones get 413.",
)
def serve(run: str, host: str, port: int, max_upload: int) -> None:
    """Serve the model of RUN (a run folder, or a Keras .keras/.h5 file): a page to draw a digit on, the
    convolution lab at /lab, and an HTTP API (needs cnnlab[web]).

    Open http://HOST:PORT/ to draw; the API is documented at /docs. Ctrl-C stops the server.
    """
    from cnnlab.serve.app import serve as run_server
    from cnnlab.training.run import Run

    model = Run(run).load_model()  # a bad RUN is reported before the banner: one line, as every error
    click.echo(f"cnnlab: serving {run} on http://{host}:{port}/ (API docs: /docs); Ctrl-C stops", err=True)
    run_server(model, host=host, port=port, max_upload=max_upload)


COMMANDS = [predict, export, serve]
