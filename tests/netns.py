"""Run a Python script inside a network namespace that has only loopback (for Ray and Dask).

Ray 2.60 tries cloud-metadata servers (169.254.169.254, metadata.google.internal)
and binds to the machine's external address even with usage stats off, so the
cluster tests and benchmarks never run it in the test process: :func:`run_isolated`
starts ``python script args`` under ``unshare --net`` (as root) with ``lo`` up and
no other interface, and fails loudly when that namespace cannot be made, rather
than running unconfined.

Also here, importable by the Ray/Dask workers (``tests/`` is on their
``PYTHONPATH``): real hashing embedders instrumented to count the texts they
compute and to SIGKILL their own process once, on the N-th call of the whole job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from embedkit.backends.hashing import HashingEmbedder

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
NO_NAMESPACE = 97  # the exit status of the shell when the namespace is not what we want

# lo up; then exactly one link (lo) and an outbound connect that fails at once
_SETUP = 'ip link set lo up || exit 97; [ "$(ip -o link show | wc -l)" = 1 ] || exit 97; exec "$@"'


class NamespaceError(AssertionError):
    """The loopback-only network namespace could not be made: nothing was run."""


def isolated_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: offline hub, Ray usage stats off, ``tests/`` importable."""
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_DEDUP_LOGS": "0",
            "PYTHONPATH": os.pathsep.join(
                [str(TESTS), str(REPO / "src"), env.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
        }
    )
    env.update(extra or {})
    return env


def run_isolated(
    script: str | os.PathLike[str],
    args: Sequence[str] = (),
    *,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python script *args`` in a new loopback-only network namespace; never unconfined.

    Raises :class:`NamespaceError` when ``unshare --net`` or the link check fails
    (not root, no ``unshare``/``ip``), and ``AssertionError`` with the child's
    output when the script itself fails.
    """
    command = [
        "unshare",
        "--net",
        "sh",
        "-c",
        _SETUP,
        "sh",
        sys.executable,
        str(script),
        *args,
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env if env is not None else isolated_env(),
            cwd=cwd,
        )
    except FileNotFoundError as exc:
        raise NamespaceError(f"cannot make a network namespace: {exc}") from exc
    if done.returncode == NO_NAMESPACE or (
        done.returncode != 0 and "unshare" in done.stderr and not done.stdout
    ):
        raise NamespaceError(
            "cannot make a loopback-only network namespace (run as root with unshare and "
            f"ip available); refusing to run {script} unconfined: {done.stderr[-2000:]}"
        )
    if done.returncode != 0:
        raise AssertionError(
            f"{script} failed with status {done.returncode}\n--- stdout\n{done.stdout[-6000:]}"
            f"\n--- stderr\n{done.stderr[-6000:]}"
        )
    return done


def check_offline() -> None:
    """Inside the child: fail unless an outbound connect is refused at once."""
    import errno
    import socket

    with socket.socket() as sock:
        sock.settimeout(2)
        code = sock.connect_ex(("169.254.169.254", 80))
    if code != errno.ENETUNREACH:
        raise SystemExit(f"not in a loopback-only namespace (connect returned {code})")


class CountingEmbedder(HashingEmbedder):
    """The real hashing model, appending ``len(texts)`` to ``log`` on each backend call."""

    def __init__(self, log: str, dim: int = 64) -> None:
        super().__init__(dim=dim)
        self.log = log

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(f"{len(texts)}\n")
        return super()._embed(texts)


def computed(log: str | os.PathLike[str]) -> int:
    """Texts computed according to a :class:`CountingEmbedder` log (0 if none)."""
    path = Path(log)
    if not path.exists():
        return 0
    return sum(int(line) for line in path.read_text("utf-8").split())


class KillingEmbedder(HashingEmbedder):
    """The real hashing model whose process SIGKILLs itself on the ``at``-th call of the job.

    Calls are counted across processes in ``folder/calls`` (one byte appended per
    call); the kill happens once, recorded in ``folder/killed`` (the victim's pid).
    """

    def __init__(self, folder: str, at: int, dim: int = 64) -> None:
        super().__init__(dim=dim)
        self.folder = folder
        self.at = at

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        calls = Path(self.folder) / "calls"
        with open(calls, "ab") as fh:
            fh.write(b".")
            fh.flush()
            seen = fh.tell()
        if seen >= self.at:
            try:
                fd = os.open(Path(self.folder) / "killed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return super()._embed(texts)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads inside the block (the actors' and workers' count: 1).

    torch's float reductions depend on the thread count (vectors differ by ~2e-7
    between 1 and 2 threads), so a reference for 1-CPU workers runs on 1 thread.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
