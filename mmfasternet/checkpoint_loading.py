"""Safe checkpoint loading for mmengine on PyTorch >= 2.6.

PyTorch 2.6 made ``torch.load(..., weights_only=True)`` the default. Its
restricted unpickler refuses everything that is not a tensor or a plain
container, which includes what mmengine writes into every checkpoint: the
message hub's :class:`~mmengine.logging.HistoryBuffer` objects with their
numpy histories, and numpy scalars in ``meta``. mmengine's own loaders call
``torch.load`` with that default, so ``--resume``, ``tools/test.py`` and
``init_cfg=dict(type='Pretrained', ...)`` fail on a Runner's checkpoint.

This module's loaders (:func:`load_from_local`, :func:`load_from_http`)
keep ``weights_only`` on and:

* allow exactly the extra types such checkpoints need
  (:data:`HistoryBuffer`, numpy arrays of numeric/bool dtype, numeric/bool
  numpy scalars and dtypes, see :func:`safe_checkpoint_globals`), for the
  duration of their own ``torch.load`` only: torch's global allow-list is
  never changed;
* read ``.safetensors`` files with :func:`safetensors.torch.load_file`, and
  cache Hugging Face files under :func:`cached_file_name`;
* turn a refusal into a :class:`UnsafeCheckpointError` that names the file,
  and a file that is no checkpoint at all (empty, cut short, or neither a
  PyTorch nor a safetensors file) into one
  :class:`UnreadableCheckpointError` that says which.

Where they are used:

* always inside :func:`safe_checkpoint_loaders`, which the backbones'
  ``init_weights`` (``init_cfg`` checkpoints), ``tools/train.py`` /
  ``tools/test.py`` and the export tools enter, and which puts mmengine's
  table of loaders back as it was on exit;
* process-wide only where mmengine's stock loader cannot read a Runner's
  checkpoint (see :func:`stock_loader_reads_runner_checkpoints`: PyTorch >=
  2.6 without ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``). There, importing
  :mod:`mmfasternet` (which every config does through ``custom_imports``)
  registers them with :class:`~mmengine.runner.CheckpointLoader` for local
  paths and ``http(s)://`` URLs, so that mmdet's and mmseg's own tools load
  such checkpoints too. Elsewhere importing the package changes no loader.

A file holding any other pickle content (for example a ``__reduce__``
payload) is refused *before* anything in it runs, on PyTorch >= 2.4. Older
PyTorch has no ``weights_only`` allow-list, so no Runner checkpoint could
be read safely: there a ``.pth`` loads as mmengine's own loader loads it
(``torch.load``'s default, full pickle). A trusted legacy file can
be loaded deliberately, for that file only, with :func:`trusted_checkpoint`
(or ``--trust-checkpoint PATH`` in ``tools/train.py`` / ``tools/test.py``).
There is no global switch.

Example:
    >>> import mmfasternet
    >>> from mmengine.runner import load_checkpoint
    >>> ckpt = 'work_dirs/exp/iter_4000.pth'
    >>> with mmfasternet.safe_checkpoint_loaders():  # doctest: +SKIP
    ...     load_checkpoint(model, ckpt)
    >>> legacy = 'legacy_full_model.pth'
    >>> with mmfasternet.safe_checkpoint_loaders():  # doctest: +SKIP
    ...     with mmfasternet.trusted_checkpoint(legacy):
    ...         load_checkpoint(model, legacy)
"""
import builtins
import contextlib
import importlib
import io
import logging
import os
import os.path as osp
import pickle
import re
import warnings
import zipfile
from collections import Counter
from typing import Any, Callable, Iterator, List, Tuple, Union
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner import CheckpointLoader

__all__ = [
    'UnreadableCheckpointError', 'UnsafeCheckpointError', 'cached_file_name',
    'load_from_http', 'load_from_local', 'safe_checkpoint_globals',
    'safe_checkpoint_loaders', 'setup_safe_checkpoint_loading',
    'stock_loader_reads_runner_checkpoints', 'trusted_checkpoint'
]

SafeGlobal = Union[Callable, Tuple[Callable, str]]

# numpy's type codes of the fixed-size numeric and bool dtypes. Object,
# structured ("void"), string and datetime dtypes are deliberately absent.
_NUMPY_DTYPE_CODES = '?bBhHiIlLqQefdgFDG'
# numpy 2 moved ``numpy.core`` to ``numpy._core``; pickles name whichever
# module the writing numpy had, so both spellings are registered.
_NUMPY_MULTIARRAY_NAMES = ('numpy.core.multiarray', 'numpy._core.multiarray')

# HistoryBuffer pickles its built-in statistics methods (``__getstate__``
# stores them), and protocol 2 spells a method as
# ``getattr(HistoryBuffer, 'min')``.
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')
# Local paths (resolved) and URLs the user has explicitly trusted, counted so
# that nested ``trusted_checkpoint`` blocks for the same file work.
_trusted: Counter = Counter()


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickle content outside the allow-list.

    Subclasses :class:`pickle.UnpicklingError` (what ``torch.load`` raises for
    a refused ``weights_only`` load), so existing handlers keep working.
    """


def _numpy_multiarray():
    """numpy's ``multiarray`` module under numpy 1.x or 2.x."""
    try:
        return importlib.import_module('numpy._core.multiarray')
    except ImportError:  # numpy < 2
        return importlib.import_module('numpy.core.multiarray')


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` while unpickling with weights_only.

    Resolves only ``HistoryBuffer.<min|max|current|mean>``; a general
    ``getattr`` would let a pickle walk from any allowed object to arbitrary
    module state.
    """
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed; only HistoryBuffer '
        f'statistics methods {_HISTORY_BUFFER_METHODS} are')


def safe_checkpoint_globals() -> List[SafeGlobal]:
    """The globals mmengine checkpoints need beyond torch's defaults.

    Found by running ``torch.serialization.get_unsafe_globals_in_checkpoint``
    on checkpoints written by ``Runner.save_checkpoint``. Containers such as
    ``OrderedDict`` and ``Counter`` (``MultiStepLR.milestones``) are already
    allowed by torch.

    Returns:
        list: Entries for :func:`torch.serialization.add_safe_globals`, as
        classes/functions or ``(object, 'pickled.name')`` tuples.
    """
    import numpy as np
    multiarray = _numpy_multiarray()
    entries: List[SafeGlobal] = [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
        # ``bytes()`` is how protocol-2 pickles spell the empty data of an
        # empty array (e.g. a fresh HistoryBuffer).
        builtins.bytes,
    ]
    # dtype instances are restored with BUILD, which requires their class.
    entries += sorted({type(np.dtype(code))
                       for code in _NUMPY_DTYPE_CODES},
                      key=lambda cls: cls.__name__)
    for module in _NUMPY_MULTIARRAY_NAMES:
        entries.append((multiarray._reconstruct, f'{module}._reconstruct'))
        entries.append((multiarray.scalar, f'{module}.scalar'))
    return entries


@contextlib.contextmanager
def _allow_listed() -> Iterator[None]:
    """Extend torch's ``weights_only`` allow-list with
    :func:`safe_checkpoint_globals` for the block only.

    Entries the process had already allowed are left alone (torch's
    ``safe_globals`` would remove them on exit), so the global list is the
    same afterwards. Needs PyTorch >= 2.4 (an allow-list to extend):
    :func:`_load_file` reads files without it on older PyTorch.
    """
    serialization = torch.serialization
    before = list(serialization.get_safe_globals())
    added = [e for e in safe_checkpoint_globals() if e not in before]
    if hasattr(serialization, 'safe_globals'):  # PyTorch >= 2.5
        with serialization.safe_globals(added):
            yield
        return
    serialization.add_safe_globals(added)
    try:
        yield
    finally:
        serialization.clear_safe_globals()
        serialization.add_safe_globals(before)


def _trust_key(filename: str) -> str:
    """Identity of a checkpoint for the trust list: resolved path or URL."""
    if urlparse(filename).scheme in ('http', 'https'):
        return filename
    return osp.realpath(osp.expanduser(filename))


def _is_trusted(*filenames: str) -> bool:
    return any(_trusted[_trust_key(f)] > 0 for f in filenames)


@contextlib.contextmanager
def trusted_checkpoint(*filenames: Union[str, os.PathLike]) -> Iterator[None]:
    """Allow full (unsafe) unpickling of the given checkpoints, and no other.

    Only use this for files whose origin you trust: unpickling them can run
    arbitrary code. Inside the block, mmfasternet's loaders read exactly
    these files with ``weights_only=False``, through mmengine too
    (``load_checkpoint``, ``Runner.resume``, ``init_cfg``) where they are
    in use (see :func:`safe_checkpoint_loaders`); every other file is still
    loaded safely. Outside the block nothing changes. Blocks nest, for the
    same file too.

    Args:
        *filenames (str | os.PathLike): Local paths (compared after resolving
            ``~`` and symlinks) or ``http(s)://`` URLs.

    Example:
        >>> with trusted_checkpoint('old_full_pickle.pth'):  # doctest: +SKIP
        ...     load_checkpoint(model, 'old_full_pickle.pth')
    """
    keys = [_trust_key(os.fspath(f)) for f in filenames]
    _trusted.update(keys)
    try:
        yield
    finally:
        _trusted.subtract(keys)
        for key in keys:
            if _trusted[key] <= 0:
                del _trusted[key]


class UnreadableCheckpointError(ValueError):
    """A file given as a checkpoint is empty, truncated, or neither a PyTorch
    (``torch.save``) nor a safetensors file."""


# ``torch.save`` writes a zip archive (PyTorch >= 1.6) or, in the legacy
# format, a pickle stream that starts with the PROTO opcode.
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'


def _unreadable(source: str, problem: str) -> UnreadableCheckpointError:
    return UnreadableCheckpointError(
        f'{source!r} is not a readable checkpoint: {problem}. mmfasternet '
        'reads PyTorch checkpoints (written by torch.save) and .safetensors '
        'files; if this file was downloaded or copied, it may be incomplete: '
        'fetch it again.')


def _check_torch_file(filename: str, source: str) -> None:
    """Raise :class:`UnreadableCheckpointError` unless ``filename`` looks
    like a complete ``torch.save`` file (checked before unpickling)."""
    with open(filename, 'rb') as f:
        head = f.read(4)
    if not head:
        raise _unreadable(source, 'the file is empty')
    if head == _ZIP_MAGIC:
        if not zipfile.is_zipfile(filename):
            raise _unreadable(
                source, 'its zip archive is truncated or damaged (no '
                'central directory)')
    elif not head.startswith(_PICKLE_PROTO):
        raise _unreadable(
            source, f'it is neither a PyTorch nor a safetensors file (it '
            f'starts with {head!r})')


def _safetensors_device(map_location: Any) -> str:
    if isinstance(map_location, (str, torch.device)):
        return str(map_location)
    # ``None`` or the callables/dicts torch.load accepts: read on CPU, the
    # weights are copied into the model's parameters afterwards anyway.
    return 'cpu'


def _refusal(filename: str, source: str, error: Exception) -> str:
    # torch's message advises weights_only=False for the whole call; keep
    # only its reason (and no terminal colour codes).
    reason = re.sub(r'\x1b\[[0-9;]*m', '', str(error))
    reason = reason.split('WeightsUnpickler error:')[-1]
    reason = reason.split('Check the documentation of torch.load')[0]
    reason = reason.split(' Please use `torch.serialization')[0].strip()
    try:
        with _allow_listed():
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(
                filename)
    except Exception:  # legacy format, older torch: the scan is optional
        unsafe = []
    found = f' (not allow-listed: {", ".join(sorted(unsafe))})' if unsafe \
        else ''
    quoted = repr(source)
    return (
        f'Refused to load checkpoint {quoted}: it contains pickle content '
        f'that is not allow-listed for weights_only loading{found}. Nothing '
        'in it was executed. mmfasternet loads checkpoints with '
        'weights_only=True and allows only tensors, containers, mmengine '
        'HistoryBuffer and numeric numpy data. If, and only if, you trust '
        'where this file comes from, load it deliberately for this file '
        'only: in Python, `with mmfasternet.trusted_checkpoint('
        f'{quoted}): ...`; with the tools, `--trust-checkpoint {source}`. '
        f'Unpickler: {reason}')


def _load_safetensors(filename: str, map_location: Any, source: str) -> Any:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError as err:
        raise ImportError(f'Loading {filename!r} needs the `safetensors` '
                          'package: pip install safetensors') from err
    if osp.getsize(filename) == 0:
        raise _unreadable(source, 'the file is empty')
    try:
        return load_file(filename, device=_safetensors_device(map_location))
    except SafetensorError as err:
        raise _unreadable(
            source, f'it is not a complete safetensors file ({err})') from err


def _load_file(filename: str, map_location: Any, source: str) -> Any:
    """Load a local file safely, unless ``source`` or the file is trusted."""
    if filename.endswith('.safetensors'):
        return _load_safetensors(filename, map_location, source)
    _check_torch_file(filename, source)
    if _is_trusted(source, filename):
        print_log(
            f'Loading {source!r} with weights_only=False: it was explicitly '
            'trusted with trusted_checkpoint()/--trust-checkpoint.',
            logger='current',
            level=logging.WARNING)
        return torch.load(
            filename, map_location=map_location, weights_only=False)
    if not hasattr(torch.serialization, 'add_safe_globals'):
        # PyTorch < 2.4: weights_only has no allow-list, so it refuses every
        # Runner checkpoint; load as mmengine's own loader does there.
        return torch.load(filename, map_location=map_location)
    try:
        with _allow_listed():
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if 'truncated' in str(err):
            raise _unreadable(source, 'its pickle data is truncated') from err
        raise UnsafeCheckpointError(_refusal(filename, source, err)) from err
    except (EOFError, OSError, RuntimeError, KeyError, ValueError) as err:
        # What torch.load raises for a damaged file; its own message can
        # advise weights_only=False, which would not help here.
        detail = (str(err).splitlines() or [''])[0][:120]
        if not detail or 'weights_only' in detail:
            detail = type(err).__name__
        raise _unreadable(source,
                          f'it is truncated or damaged ({detail})') from err


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint (``.pth`` or ``.safetensors``) safely.

    Registered with mmengine's ``CheckpointLoader`` for paths without a
    scheme. Same contract as mmengine's own ``load_from_local``.

    Args:
        filename (str): Local checkpoint path (``~`` is expanded).
        map_location (str | torch.device | Callable | dict, optional): Same
            as :func:`torch.load`. Defaults to None.

    Returns:
        Any: The loaded checkpoint, usually a dict.

    Raises:
        FileNotFoundError: If the file does not exist.
        UnsafeCheckpointError: If the file holds non-allow-listed pickle
            content and was not trusted with :func:`trusted_checkpoint`.
        UnreadableCheckpointError: If the file is empty, truncated, or
            neither a PyTorch nor a safetensors file.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return _load_file(filename, map_location, source=filename)


def cached_file_name(url: str) -> str:
    """The name a checkpoint downloaded from ``url`` is cached under.

    The last component of the URL's path, as ``torch.hub`` (and so
    mmengine's own HTTP loader) names it, except for a Hugging Face Hub file
    (``https://huggingface.co/<owner>/<repo>/resolve/<revision>/<file>``):
    every timm repository names its weights ``model.safetensors``, so the
    repository's name goes first, ``<repo>_<file>``, and two models never
    share one cached file.

    Args:
        url (str): ``http://`` or ``https://`` URL of a checkpoint.

    Returns:
        str: The file name inside ``<torch hub dir>/checkpoints``.

    Example:
        >>> cached_file_name('https://huggingface.co/timm/ghostnetv2_100.in1k'
        ...                  '/resolve/main/model.safetensors')
        'ghostnetv2_100.in1k_model.safetensors'
    """
    parsed = urlparse(url)
    parts = parsed.path.strip('/').split('/')
    if (parsed.netloc == 'huggingface.co' and len(parts) >= 5
            and parts[2] == 'resolve'):
        return f'{parts[1]}_{parts[-1]}'
    return osp.basename(parsed.path)


def _download(url: str, model_dir: str = None) -> str:
    """Fetch ``url`` into torch's hub cache (``load_state_dict_from_url``)."""
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, cached_file_name(url))
    if not osp.exists(cached):
        print_log(f'Downloading {url} to {cached}', logger='current')
        torch.hub.download_url_to_file(url, cached, progress=True)
    return cached


def load_from_http(filename: str,
                   map_location: Any = None,
                   model_dir: str = None) -> Any:
    """Download a checkpoint over HTTP(S) and load it safely.

    Replaces mmengine's ``load_from_http``, whose ``torch.hub`` call loads
    with ``weights_only=False``. In distributed runs rank 0 downloads first.

    Args:
        filename (str): ``http://`` or ``https://`` URL.
        map_location (str | torch.device | Callable | dict, optional): Same
            as :func:`torch.load`. Defaults to None.
        model_dir (str, optional): Download directory. Defaults to
            ``<torch hub dir>/checkpoints`` (``$TORCH_HOME/hub/checkpoints``,
            by default ``~/.cache/torch/hub/checkpoints``). A file already
            there under :func:`cached_file_name` is used without
            downloading, which is how a local copy is used offline.

    Returns:
        Any: The loaded checkpoint, usually a dict.
    """
    rank, world_size = get_dist_info()
    if rank == 0:
        cached = _download(filename, model_dir)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            cached = _download(filename, model_dir)
    return _load_file(cached, map_location, source=filename)


def _register_loaders() -> None:
    """Register :func:`load_from_local` and :func:`load_from_http` with
    mmengine's ``CheckpointLoader`` for local paths and ``http(s)://``."""
    CheckpointLoader.register_scheme('', load_from_local, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'),
                                     load_from_http,
                                     force=True)


@contextlib.contextmanager
def safe_checkpoint_loaders() -> Iterator[None]:
    """Load local and ``http(s)://`` checkpoints through mmfasternet's safe
    loaders inside the block, whatever loaders the process has registered.

    mmengine's :class:`~mmengine.runner.CheckpointLoader` (and so
    ``load_checkpoint``, ``Runner`` and ``init_cfg``) uses
    :func:`load_from_local` and :func:`load_from_http` until the block
    ends; then its table of loaders is put back as it was. Blocks nest.

    Example:
        >>> with safe_checkpoint_loaders():  # doctest: +SKIP
        ...     load_checkpoint(model, 'model.safetensors')
    """
    # register_scheme replaces the table (it re-sorts it into a new dict),
    # so the old one is put back by assignment.
    before = CheckpointLoader._schemes.copy()
    _register_loaders()
    try:
        yield
    finally:
        CheckpointLoader._schemes = before


def stock_loader_reads_runner_checkpoints() -> bool:
    """Whether mmengine's own loaders can read what ``Runner`` saves.

    They call ``torch.load`` with its defaults, so the answer is torch's:
    yes before PyTorch 2.6 (``weights_only=False``), or with
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, or once the process itself has
    allowed mmengine's types; no otherwise. Found by loading, in memory, a
    small dict with what a Runner's checkpoint holds beyond tensors (a
    :class:`HistoryBuffer` and a numpy scalar).

    Returns:
        bool: True if a Runner's checkpoint loads with the stock loaders.
    """
    import numpy as np
    history = HistoryBuffer()
    history.update(1.0)
    data = io.BytesIO()
    torch.save(dict(history=history, seed=np.int64(0)), data)
    data.seek(0)
    with warnings.catch_warnings():
        # torch 2.4/2.5 warn about the weights_only=False default, and the
        # environment variable warns that it forces it.
        warnings.simplefilter('ignore')
        try:
            torch.load(data)
        except pickle.UnpicklingError:
            return False
    return True


def setup_safe_checkpoint_loading() -> bool:
    """Register the safe loaders process-wide, if the stock ones would fail.

    Called when :mod:`mmfasternet` is imported. Where
    :func:`stock_loader_reads_runner_checkpoints` holds it changes nothing
    (neither mmengine's loaders nor torch's allow-list); elsewhere
    (PyTorch >= 2.6) it registers :func:`load_from_local` and
    :func:`load_from_http` with mmengine's ``CheckpointLoader`` for local
    paths and ``http(s)://`` URLs, so that any tool loads a Runner's
    checkpoints. Idempotent. Torch's global allow-list is never changed:
    the loaders allow mmengine's types only during their own load.

    Returns:
        bool: Whether it registered them.
    """
    if stock_loader_reads_runner_checkpoints():
        return False
    _register_loaders()
    return True
