"""Name the module an export step failed in, with forward hooks.

A step can fail in two places:

* During a forward pass (building the wrapper, the PyTorch pre-run, the
  exporter's trace): a forward pre-hook on every module pushes its name
  and a forward hook pops it, so the modules entered and not left when the
  exception arrived are the ones it came from; the last is the innermost
  (:func:`module_tracker`).
* After the forward pass, while the exporter converts the traced graph
  (an operator the opset lacks): no module is running then. The step is
  run again on the modules the model calls, each with the inputs it got,
  outermost first, descending into the one that fails with the same error
  down to the innermost such module (:func:`find_failing_module`).
"""
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Dict, Iterator, List, Optional

import torch
import torch.nn as nn

from .export_modes import ExportError

#: ``rerun(module, args, kwargs)``: a failed step, applied to a submodule.
Rerun = Callable[[nn.Module, tuple, Dict[str, Any]], Any]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its repr if empty)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else repr(exc)


def module_path(name: str) -> str:
    """A submodule's name as the model (not the export wrapper) names it."""
    if name.startswith('model.'):
        return name[len('model.'):]  # the wrapper's attribute
    return '<model>' if name in ('', 'model') else name


def _label(name: str, module: nn.Module) -> str:
    return f'{module_path(name)} ({type(module).__name__})'


@contextmanager
def module_tracker(model: nn.Module) -> Iterator[List[str]]:
    """Keep the names of the modules being run (outermost first).

    When a forward pass raises, the modules it was in stay on the stack
    (their forward hooks never ran): its last entry is the innermost one.
    """
    # Not torch.utils.module_tracker.ModuleTracker: it keeps an unordered
    # set of names rooted at the first module run (under torch.onnx.export,
    # the exporter's own ONNXTracedModule), not the path in ``model``.
    stack: List[str] = []
    handles = []
    for name, module in model.named_modules():

        def push(_mod, _args, label=_label(name, module)):
            stack.append(label)

        def pop(_mod, _args, _out):
            if stack:
                stack.pop()

        handles.append(module.register_forward_pre_hook(push))
        handles.append(module.register_forward_hook(pop))
    try:
        yield stack
    finally:
        for handle in handles:
            handle.remove()


def run_tracked(module: nn.Module,
                step: Callable[[], Any],
                what: str,
                rerun: Optional[Rerun] = None,
                inputs: tuple = ()) -> Any:
    """``step()`` without gradients, its exceptions turned into an
    :class:`ExportError` that names the module they came from.

    Args:
        module (nn.Module): The model or wrapper whose modules to track.
        step (Callable): What to run.
        what (str): The step, for the message ("ONNX export (opset 17)").
        rerun (Callable, optional): The step applied to one submodule,
            ``rerun(submodule, args, kwargs)``: when the error arose
            outside any forward pass, :func:`find_failing_module` uses it
            to find the module. Default: None (no such search).
        inputs (tuple): ``module``'s inputs, for that search.
            Default: ().
    """
    with module_tracker(module) as stack, torch.no_grad():
        try:
            return step()
        except ExportError:
            raise
        except Exception as exc:  # turned into a message naming the module
            failure, failed_in = exc, list(stack)
    if failed_in:
        where = (f' in module {failed_in[-1]} '
                 f'(inside {" > ".join(failed_in[:-1]) or "-"})')
    elif rerun is not None:
        culprit = find_failing_module(module, tuple(inputs), rerun, failure)
        where = (f' in module {culprit}'
                 if culprit else ' while converting the traced graph')
    else:
        where = ''
    raise ExportError(f'{what} failed{where}: {type(failure).__name__}: '
                      f'{first_line(failure)}') from failure


def find_failing_module(root: nn.Module, inputs: tuple, rerun: Rerun,
                        failure: Exception) -> Optional[str]:
    """The innermost module below ``root`` on which ``rerun`` fails as
    ``root`` did (same exception type and first line).

    Args:
        root (nn.Module): The module the step failed on.
        inputs (tuple): ``root``'s positional inputs.
        rerun (Callable): The step, ``rerun(module, args, kwargs)``.
        failure (Exception): What the step raised on ``root``.

    Returns:
        str | None: ``'path (Type)'`` of that module, None when no module
        below ``root`` fails alike (or the search itself failed).
    """
    path, module, args, kwargs = '', root, inputs, {}
    try:
        while True:
            for name, child, c_args, c_kwargs in outermost_calls(
                    module, args, kwargs):
                if _fails_alike(rerun, child, c_args, c_kwargs, failure):
                    path = f'{path}.{name}' if path else name
                    module, args, kwargs = child, c_args, c_kwargs
                    break
            else:
                return _label(path, module) if path else None
    except Exception:  # the search is a hint; the failure itself is reported
        return None


def outermost_calls(module: nn.Module, args: tuple,
                    kwargs: Dict[str, Any]) -> List[tuple]:
    """The submodules that ``module(*args, **kwargs)`` calls itself (not
    through another submodule), in call order, each with a copy of the
    inputs of its first call.

    Returns:
        list[tuple]: ``(name, submodule, args, kwargs)``, ``name``
        relative to ``module``.
    """
    calls: Dict[str, tuple] = {}
    depth = [0]

    def enter(name, child, c_args, c_kwargs):
        if depth[0] == 0 and name not in calls:
            calls[name] = (child, _copied(c_args), _copied(c_kwargs))
        depth[0] += 1

    def leave(_mod, _args, _out):
        depth[0] -= 1

    handles = []
    for name, child in module.named_modules():
        if child is not module:
            handles.append(
                child.register_forward_pre_hook(
                    partial(enter, name), with_kwargs=True))
            handles.append(child.register_forward_hook(leave))
    try:
        with torch.no_grad():
            module(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return [(name, ) + call for name, call in calls.items()]


def _fails_alike(rerun: Rerun, module: nn.Module, args: tuple,
                 kwargs: Dict[str, Any], failure: Exception) -> bool:
    try:
        with torch.no_grad():
            rerun(module, args, kwargs)
    except Exception as exc:  # compared with the original failure
        return (type(exc) is type(failure)
                and first_line(exc) == first_line(failure))
    return False


def _copied(value: Any) -> Any:
    """Tensors (in plain tuples, lists and dicts) cloned: a module may
    change its input in place after the hook has seen it."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if type(value) in (tuple, list):
        return type(value)(_copied(v) for v in value)
    if type(value) is dict:
        return {k: _copied(v) for k, v in value.items()}
    return value
