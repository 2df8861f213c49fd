"""How live the convolution lab page feels: the round trip of ``POST /api/lab/filter`` on the 512×512 photo.

    python benchmarks/lab_roundtrip.py [--requests 40]

Starts the real server (``python -m cnnlab lab`` on a free port of 127.0.0.1) and, for each of the page's
typical settings, sends REQUESTS filter requests one after the other on one keep-alive connection, as the
page does while a slider moves (one request in flight, the next when it returns). Each round trip is timed
from sending the JSON to having parsed the answer (the output as a PNG data URL, shapes, formula numbers,
the step crop). Prints the median, the 90th percentile and the largest, and the answer's size.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from load_test import HOST, free_port, wait_until_serving  # the server helpers beside this script

WARM_UP = 5  # requests per setting not counted: the first ones pay for imports and caches
STEP = {"top": 179, "left": 230, "size": 8}  # the page sends its step crop with every request
SETTINGS = {  # name -> the body the page sends
    "3×3 all ones, strides (2, 1)": {"kernel": [[1] * 3] * 3, "stride": [2, 1]},
    "3×3 sobel-y, padding same": {"kernel": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]], "padding": "same"},
    "7×7 all ones": {"kernel": [[1] * 7] * 7},
    "5×5 max pooling alone": {"pool": {"kind": "max", "size": [5, 5]}},
    "colour, 3 kernels summed": {
        "picture": "photo-colour",
        "colour": "sum",
        "channel_kernels": [[[1, 0, -1]] * 3, [[1, 1, 1], [0, 0, 0], [-1, -1, -1]], [[1 / 9] * 3] * 3],
    },
    "colour, 3×3 per channel, max pool 2": {
        "picture": "photo-colour",
        "colour": "per-channel",
        "kernel": [[1] * 3] * 3,
        "pool": {"kind": "max", "size": [2, 2]},
    },
}


@contextmanager
def running_lab() -> Iterator[str]:
    """``cnnlab lab`` in a child process until the block ends; its URL."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "lab", "--host", HOST, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://{HOST}:{port}"
    try:
        wait_until_serving(
            f"{url}/api/lab/pictures", child, lambda: f"the lab did not start: {child.stderr.read().decode()[-2000:]}"
        )
        yield url
    finally:
        child.terminate()
        child.wait(timeout=20)


def round_trips(client: httpx.Client, url: str, body: dict, requests: int) -> tuple[list[float], int]:
    """Milliseconds of each counted round trip, and the answer's size in bytes."""
    timings = []
    for number in range(WARM_UP + requests):
        started = time.perf_counter()
        response = client.post(f"{url}/api/lab/filter", json={**body, "step": STEP})
        response.raise_for_status()
        response.json()
        if number >= WARM_UP:
            timings.append(1000 * (time.perf_counter() - started))
    return timings, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests timed per setting")
    arguments = parser.parse_args()
    with running_lab() as url, httpx.Client(timeout=30) as client:
        print(f"POST /api/lab/filter on the 512×512 photo, {arguments.requests} requests per setting, one at a time")
        print(f"{'setting':38} {'median':>8} {'p90':>8} {'max':>8} {'answer':>9}")
        for name, body in SETTINGS.items():
            timings, size = round_trips(client, url, body, arguments.requests)
            p90 = statistics.quantiles(timings, n=10, method="inclusive")[-1]  # within the timings measured
            print(
                f"{name:38} {statistics.median(timings):6.1f}ms {p90:6.1f}ms {max(timings):6.1f}ms "
                f"{size / 1000:6.0f} kB"
            )


if __name__ == "__main__":
    main()
