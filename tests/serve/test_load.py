"""The server under load and abuse: a real ``cnnlab serve`` on loopback, driven by benchmarks/load_test.py.

2,000 predictions from 8 concurrent clients while malformed, oversized and stalled requests arrive:
every good request succeeds, every bad one gets its 4xx (or its connection closed), and the server's
memory stays within a bound. ``python benchmarks/load_test.py`` runs the full figure (20,000).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "load_test.py"
_spec = importlib.util.spec_from_file_location("load_test", BENCHMARK)
load_test = sys.modules["load_test"] = importlib.util.module_from_spec(_spec)  # dataclasses look themselves up there
_spec.loader.exec_module(load_test)

REQUESTS, CLIENTS = 2000, 8
RSS_GROWTH_MIB = 40  # after a warm-up; a leak of 20 KB per request would exceed it


@pytest.mark.slow
def test_the_server_keeps_serving_under_load_and_abuse(tmp_path):
    report = load_test.run_load_test(load_test.untrained_run(tmp_path / "model"), REQUESTS, CLIENTS)
    print("\n".join(report.lines()))  # the figures, for -s

    assert report.load.statuses == {200: REQUESTS}
    assert report.rss_after - report.rss_before < RSS_GROWTH_MIB
    for name, statuses in report.abuse.items():
        assert set(statuses) <= load_test.ABUSE[name][1], name
    assert report.stalled == {"head": ["closed"] * 4, "body": ["HTTP/1.1 408 Request Timeout"] * 4}
