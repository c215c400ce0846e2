"""Run the scripts in tools/ as a user would, for the tool tests."""
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tool_env(**extra) -> dict:
    """The environment for a tool: one OpenMP thread, this interpreter."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env.update(extra)
    return env


def tool_command(script: str, *args) -> list:
    """``python tools/x.py ...`` or ``bash tools/x.sh ...``."""
    runner = [sys.executable] if script.endswith('.py') else ['bash']
    return runner + [str(REPO / 'tools' / script)] + list(args)


def run_tool(script: str,
             *args,
             timeout: int = 240,
             expect_failure: bool = False,
             **env) -> str:
    """Run a tools/ script; return its combined output, fail with it.

    With ``expect_failure`` the script must exit non-zero instead.
    """
    proc = subprocess.run(
        tool_command(script, *args),
        cwd=str(REPO),
        env=tool_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    assert (proc.returncode != 0) == expect_failure, proc.stdout[-6000:]
    return proc.stdout


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
