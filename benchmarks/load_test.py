"""Load and abuse test of ``cnnlab serve`` on loopback.

    python benchmarks/load_test.py [RUN] [--requests 20000] [--clients 8]

Starts the real server (``python -m cnnlab serve RUN`` on a free port of 127.0.0.1) and sends it
REQUESTS predictions from CLIENTS concurrent keep-alive clients (MNIST test digits as PNG uploads).
At the same time it is abused: malformed and oversized requests (each must get its 4xx), connections
that stall in their request head (closed after serve.HEAD_TIMEOUT) and in their body (408 after
serve.BODY_TIMEOUT). Prints requests/s, latency p50/p99 and the server's resident memory before and
after. Without RUN an untrained CNN is served: the work per request (decode, preprocess, forward)
is the same. tests/test_load.py runs the same code with fewer requests.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

HOST = "127.0.0.1"
MAX_UPLOAD = 100_000  # bytes; the server is started with this --max-upload so that 'oversized' stays small


@dataclass
class Server:
    url: str
    pid: int
    port: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, child: subprocess.Popen, failure, seconds: float = 120) -> None:
    """Poll ``url`` until it answers 200; ``failure()`` says why when ``child`` exits or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if child.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(failure())
        time.sleep(0.2)


@contextmanager
def running_server(run: Path, log: Path) -> Iterator[Server]:
    """``cnnlab serve RUN`` in a child process until the block ends; its log (one line a request) goes to ``log``."""
    port = free_port()
    with open(log, "wb") as output:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cnnlab",
                "serve",
                str(run),
                "--host",
                HOST,
                "--port",
                str(port),
                "--max-upload",
                str(MAX_UPLOAD),
            ],
            stdout=output,
            stderr=output,
        )
    url = f"http://{HOST}:{port}"
    try:
        wait_until_serving(f"{url}/api/model", child, lambda: f"the server did not start:\n{log.read_text()[-2000:]}")
        yield Server(url, child.pid, port)
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def rss_mib(pid: int) -> float:
    """Resident memory of a process (VmRSS in /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # the line reads 'VmRSS:  123456 kB'
    raise RuntimeError(f"no VmRSS for process {pid}")


def digit_pictures(count: int = 64) -> list[bytes]:
    """The first MNIST test digits as PNG files (light ink on dark, as MNIST has them)."""
    from cnnlab.data.registry import load_dataset

    pictures = []
    for pixels in load_dataset("mnist").x_test[:count, ..., 0]:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        pictures.append(buffer.getvalue())
    return pictures


# --- good traffic ------------------------------------------------------------------------------


@dataclass
class LoadResult:
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds per request
    seconds: float = 0.0  # wall time of the whole load

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def latency_ms(self, percent: float) -> float:
        return float(np.percentile(self.latencies, percent)) * 1000


def load(url: str, pictures: list[bytes], requests: int, clients: int) -> LoadResult:
    """``requests`` predictions from ``clients`` threads, each a keep-alive client taking its share in turn."""
    result, lock = LoadResult(), threading.Lock()

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as session:
            for index in range(number, requests, clients):
                picture = pictures[index % len(pictures)]
                started = time.perf_counter()
                try:
                    status = session.post(
                        "/api/predict", files={"image": ("digit.png", picture, "image/png")}
                    ).status_code
                except httpx.TransportError as problem:
                    status = type(problem).__name__
                elapsed = time.perf_counter() - started
                with lock:
                    result.statuses[status] += 1
                    result.latencies.append(elapsed)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    result.seconds = time.perf_counter() - started
    return result


# --- abuse -------------------------------------------------------------------------------------


def _raw(port: int, request: bytes) -> int:
    """Send raw bytes, return the status of the answer (0 when the server just closes)."""
    with socket.create_connection((HOST, port), timeout=30) as connection:
        connection.sendall(request)
        answer = connection.recv(64)
    return int(answer.split()[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _picture(mode: str, size: tuple[int, int], colour: int) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(name: str, data: bytes) -> dict:
    return {"files": {"image": (name, data, "application/octet-stream")}}


def _chunks(total: int, size: int = 10_000) -> Iterator[bytes]:
    for _ in range(total // size):
        yield bytes(size)


# name -> (how to send it, the statuses that are a right answer)
ABUSE = {
    "text file as the image": (lambda c, s: c.post("/api/predict", **_upload("notes.txt", b"not a picture\n")), {400}),
    "truncated PNG": (lambda c, s: c.post("/api/predict", **_upload("d.png", _picture("L", (28, 28), 0)[:40])), {400}),
    "decompression bomb": (
        lambda c, s: c.post("/api/predict", **_upload("b.png", _picture("1", (10_000, 10_000), 0))),
        {400},
    ),
    "blank picture": (lambda c, s: c.post("/api/predict", **_upload("w.png", _picture("L", (28, 28), 255))), {422}),
    "malformed JSON": (
        lambda c, s: c.post("/api/predict", content=b'{"pixels": [[0, 1', headers={"content-type": "application/json"}),
        {400},
    ),
    "ragged pixel rows": (lambda c, s: c.post("/api/predict", json={"pixels": [[0, 1], [2]]}), {400}),
    "multipart without image": (lambda c, s: c.post("/api/predict", files={"other": ("x", b"1")}), {400}),
    "wrong content type": (
        lambda c, s: c.post("/api/predict", content=b"hello", headers={"content-type": "text/plain"}),
        {415},
    ),
    "over --max-upload (declared)": (
        lambda c, s: c.post("/api/predict", **_upload("big.png", bytes(2 * MAX_UPLOAD))),
        {413},
    ),
    "over --max-upload (chunked)": (
        lambda c, s: c.post(
            "/api/predict", content=_chunks(3 * MAX_UPLOAD), headers={"content-type": "application/json"}
        ),
        {413},
    ),
    "Content-Length not a number": (
        lambda c, s: _raw(s.port, b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
        {400},
    ),
    "200 KB of headers": (
        lambda c, s: _raw(s.port, b"GET /api/model HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"),
        {400, 431},
    ),
    "not HTTP at all": (lambda c, s: _raw(s.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 4), {0, 400}),
}


def abuse(server: Server, rounds: int = 1) -> dict[str, Counter]:
    """Every ABUSE request ``rounds`` times; the statuses each got."""
    answers: dict[str, Counter] = {name: Counter() for name in ABUSE}
    with httpx.Client(base_url=server.url, timeout=60) as session:
        for _ in range(rounds):
            for name, (send, _) in ABUSE.items():
                answer = send(session, server)
                answers[name][answer if isinstance(answer, int) else answer.status_code] += 1
    return answers


def stall(server: Server, part: str) -> socket.socket:
    """A connection that sends half its request head (``part='head'``) or half its body, then nothing more."""
    connection = socket.create_connection((HOST, server.port))
    if part == "head":
        connection.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    else:
        connection.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"pixels": [[0,'
        )
    return connection


def outcome(connection: socket.socket, wait: float) -> str:
    """What the server did with a stalled connection within ``wait`` seconds: 'closed', 'HTTP/1.1 408 ...' or 'open'."""
    connection.settimeout(wait)
    try:
        answer = connection.recv(64)
    except TimeoutError:
        return "open"
    finally:
        connection.close()
    return answer.split(b"\r\n")[0].decode() if answer else "closed"


# --- the whole test ----------------------------------------------------------------------------


@dataclass
class Report:
    load: LoadResult
    rss_before: float  # MiB, after a warm-up
    rss_after: float
    abuse: dict[str, Counter]
    stalled: dict[str, list[str]]  # 'head' / 'body' -> what became of each stalled connection

    def lines(self) -> list[str]:
        result = self.load
        lines = [
            f"{len(result.latencies)} requests, {result.requests_per_second:.0f} requests/s, latency p50 "
            f"{result.latency_ms(50):.1f} ms, p99 {result.latency_ms(99):.1f} ms; statuses "
            f"{dict(result.statuses)}",
            f"server RSS {self.rss_before:.0f} MiB before, {self.rss_after:.0f} MiB after",
        ]
        lines += [f"  {name}: {dict(statuses)}" for name, statuses in self.abuse.items()]
        lines += [f"  stalled {part}: {Counter(outcomes)}" for part, outcomes in self.stalled.items()]
        return lines


def run_load_test(run: Path, requests: int, clients: int, abuse_rounds: int = 3, stalled: int = 4) -> Report:
    """Start the server, stall some connections, warm up, then load and abuse it at the same time."""
    from cnnlab.serve.web import BODY_TIMEOUT, HEAD_TIMEOUT

    pictures = digit_pictures()
    with tempfile.TemporaryDirectory() as scratch, running_server(run, Path(scratch) / "server.log") as server:
        slow = {part: [stall(server, part) for _ in range(stalled)] for part in ("head", "body")}
        opened = time.monotonic()
        load(server.url, pictures, 200, clients)  # warm-up: threads, allocator arenas, torch's first calls
        rss_before = rss_mib(server.pid)
        with ThreadPoolExecutor(1) as side:
            abused = side.submit(abuse, server, abuse_rounds)
            result = load(server.url, pictures, requests, clients)
            answers = abused.result()
        rss_after = rss_mib(server.pid)
        # each stalled connection must be dealt with by its own deadline (plus a margin for a busy machine)
        limits = {"head": HEAD_TIMEOUT + 10, "body": BODY_TIMEOUT + 10}
        outcomes = {
            part: [
                outcome(connection, max(0.1, opened + limits[part] - time.monotonic())) for connection in connections
            ]
            for part, connections in slow.items()
        }
    return Report(result, rss_before, rss_after, answers, outcomes)


def untrained_run(folder: Path) -> Path:
    from cnnlab.nn.modelio import save
    from cnnlab.nn.registry import create_model

    return save(create_model("cnn"), folder, class_names=[str(digit) for digit in range(10)], dataset="mnist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", help="run folder to serve (default: an untrained CNN)")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(options.run) if options.run else untrained_run(Path(scratch) / "model")
        report = run_load_test(run, options.requests, options.clients)
    if options.json:
        print(
            json.dumps(
                {
                    "requests": len(report.load.latencies),
                    "clients": options.clients,
                    "requests_per_second": report.load.requests_per_second,
                    "p50_ms": report.load.latency_ms(50),
                    "p99_ms": report.load.latency_ms(99),
                    "statuses": {str(k): v for k, v in report.load.statuses.items()},
                    "rss_before_mib": report.rss_before,
                    "rss_after_mib": report.rss_after,
                },
                indent=2,
            )
        )
    else:
        print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
