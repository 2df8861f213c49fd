"""What the tracker tests share: each tracker's package or a skip, no network, and W&B's offline run files read back."""

from __future__ import annotations

import importlib
import os
import socket
import struct

import pytest


def need(module: str):
    """The tracker's package, or a skip when it is not installed (a failure in CI)."""
    return importlib.import_module(module) if "CI" in os.environ else pytest.importorskip(module)


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Nothing leaves the machine: wandb offline with no key and no error reports, no MLflow telemetry; and a
    connection from this process to anywhere but this machine is refused, and fails the test."""
    attempts = []
    connect = socket.socket.connect

    def local_only(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"the tests reach no network: {address}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    settings = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false"}
    settings |= {"WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"), "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache")}
    settings |= {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    yield
    assert attempts == []


def wandb_records(path) -> list:
    """The records of a .wandb file, parsed with wandb's own protobuf Record.

    The file is LevelDB's log format, as wandb writes it: a 7-byte header (":W&B", 0xBEE1, version 0), then
    32 KiB blocks of chunks, each a 4-byte checksum, a 2-byte length, a 1-byte type (1 whole, 2 first,
    3 middle, 4 last), the data; a block's last 6 bytes or fewer are padding.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:7] == b":W&B" + struct.pack("<HB", 0xBEE1, 0)
    records, pieces, at, block = [], b"", 7, 32768
    while at + 7 <= len(data):
        if block - at % block < 7:
            at += block - at % block
            continue
        _, length, kind = struct.unpack("<IHB", data[at : at + 7])
        pieces += data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
            pieces = b""
    return records
