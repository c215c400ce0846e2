"""Run the project's scripts (tools/, benchmarks/, demo/) as a user would,
or load one as a module, for the tests."""
import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tool_env(**extra) -> dict:
    """The environment for a tool: one OpenMP thread, this interpreter;
    ``extra`` overrides, a ``None`` value removes the variable."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def tool_command(script: str, *args) -> list:
    """``python tools/x.py ...`` or ``bash tools/x.sh ...``."""
    return script_command(f'tools/{script}', *args)


def script_command(path: str, *args) -> list:
    """``python <path> ...`` or ``bash <path> ...``, ``path`` relative to
    the repository."""
    runner = [sys.executable] if path.endswith('.py') else ['bash']
    return runner + [str(REPO / path)] + [str(a) for a in args]


def run_tool(script: str, *args, **kwargs) -> str:
    """Run a tools/ script: :func:`run_script` of ``tools/<script>``."""
    return run_script(f'tools/{script}', *args, **kwargs)


def run_script(path: str,
               *args,
               timeout: int = 240,
               expect_failure: bool = False,
               **env) -> str:
    """Run a script of the repository (``path`` relative to it) in
    :func:`tool_env` with ``env``; return its combined output, fail with
    it.

    With ``expect_failure`` the script must exit non-zero instead.
    """
    return run_command(
        script_command(path, *args),
        timeout=timeout,
        expect_failure=expect_failure,
        **env)


def run_module(module: str, *args, **kwargs) -> str:
    """``python -m <module> ...`` in the repository, as :func:`run_script`
    runs a script (same keyword arguments)."""
    return run_command([sys.executable, '-m', module, *map(str, args)],
                       **kwargs)


def run_command(command: list,
                timeout: int = 240,
                expect_failure: bool = False,
                **env) -> str:
    """Run ``command`` in the repository in :func:`tool_env` with ``env``;
    return its combined output; fail with it if the exit status is not
    the one expected (zero, or non-zero with ``expect_failure``)."""
    proc = subprocess.run(
        command,
        cwd=str(REPO),
        env=tool_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    assert (proc.returncode != 0) == expect_failure, proc.stdout[-6000:]
    return proc.stdout


def start_tool(script: str, *args, **env) -> subprocess.Popen:
    """Start a tools/ script in the background, its output discarded
    (for a test that stops it); the caller waits for it."""
    return subprocess.Popen(
        tool_command(script, *args),
        cwd=str(REPO),
        env=tool_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


def dist_train_on_cpu(label: str, config, work_dir, *options) -> str:
    """``tools/dist_train.sh`` with 2 processes on CPU (gloo, a free port):
    ``config`` trained into ``work_dir`` with ``--cfg-options options``.
    Prints how long it took after ``label``; returns the output, which must
    say that the training was distributed."""
    start = time.time()
    args = [config, '2', '--work-dir', work_dir]
    if options:
        args += ['--cfg-options', *options]
    output = run_tool(
        'dist_train.sh', *args, PORT=str(free_port()), CUDA_VISIBLE_DEVICES='')
    print(f'{label}: {time.time() - start:.1f} s')
    assert 'Distributed training: True' in output
    return output


# Makes ``mmcv._ext`` unfindable, as it is with mmcv-lite: an import hook
# put in front of every other finder.
HIDE_COMPILED_MMCV = '''
import importlib.abc, sys
class HideCompiledOps(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'mmcv._ext':
            raise ModuleNotFoundError("No module named 'mmcv._ext'",
                                      name=name)
sys.meta_path.insert(0, HideCompiledOps())
'''


def run_python_without_compiled_mmcv(code: str, timeout: int = 240) -> str:
    """Run Python ``code`` in a fresh interpreter in :func:`tool_env`, with
    mmcv's compiled ops hidden whether or not they are installed; return
    its combined output, fail with it."""
    return run_command([sys.executable, '-c', HIDE_COMPILED_MMCV + code],
                       timeout=timeout)


def run_script_without_compiled_mmcv(path: str,
                                     *args,
                                     module: str = None,
                                     **kwargs) -> str:
    """Run a script (any path) as ``__main__`` with its arguments, as
    :func:`run_python_without_compiled_mmcv` runs code; through
    ``python -m <module>`` first if ``module`` is given."""
    argv = [str(path), *map(str, args)]
    if module:
        code = (f'import runpy, sys; sys.argv = {[module] + argv!r}; '
                f'runpy.run_module({module!r}, run_name="__main__")')
    else:
        code = (f'import runpy, sys; sys.argv = {argv!r}; '
                f'runpy.run_path({argv[0]!r}, run_name="__main__")')
    return run_python_without_compiled_mmcv(code, **kwargs)


def load_script(path: str):
    """A script of the repository (``path`` relative to it, not in a
    package) as a module."""
    name = path.replace('/', '_').removesuffix('.py')
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
