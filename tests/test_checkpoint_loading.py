"""Checkpoints load with ``weights_only`` on; pickle payloads never run;
importing mmfasternet changes no loader where mmengine's stock one works,
and stock checkpoints load as they do without it."""
import json
import logging
import os
import os.path as osp
import pickle
import shutil
from pathlib import Path

import mmengine
import numpy as np
import pytest
import torch
import torch.nn as nn
from backbone_checks import logged_during
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.model import BaseModel
from mmengine.optim import MultiStepLR, OptimWrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import (CheckpointLoader, Runner, get_state_dict,
                             load_checkpoint, save_checkpoint, weights_to_cpu)
from torch.utils.data import Dataset

import mmfasternet
from mmfasternet import checkpoint_loading
from mmfasternet.checkpoint_loading import (
    UnreadableCheckpointError, UnsafeCheckpointError, load_from_http,
    load_from_local, safe_checkpoint_loaders, setup_safe_checkpoint_loading,
    stock_loader_reads_runner_checkpoints)
from mmfasternet.models import FasterNet
from tool_runner import run_script
from toy_configs import with_sizes

REPO = Path(__file__).resolve().parents[1]
SEG_DEMO = REPO / 'configs' / 'demo' / 'fpn_fasternet_t0_ade20k_toy.py'
FASTERNET_MASK_RCNN = str(REPO / 'configs' /
                          'mask_rcnn_fasternet_t0_fpn_1x_coco.py')
R50_MASK_RCNN = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
# The loaders importing mmfasternet may register, where the stock one fails.
OUR_SCHEMES = {
    '': 'mmfasternet.checkpoint_loading.load_from_local',
    'http://': 'mmfasternet.checkpoint_loading.load_from_http',
    'https://': 'mmfasternet.checkpoint_loading.load_from_http',
}


class ToyModel(BaseModel):
    """Linear regression wrapped for mmengine's Runner."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.bn(self.linear(inputs))
        if mode == 'loss':
            return dict(loss=((out.squeeze(1) - targets)**2).mean())
        return out


class ToyDataset(Dataset):
    """Eight fixed samples of y = x0 - 2 x1."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(8, 2, generator=generator)
        self.targets = self.inputs[:, 0] - 2 * self.inputs[:, 1]

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, index):
        return dict(inputs=self.inputs[index], targets=self.targets[index])


class Payload:
    """Unpickling this runs code that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").close()', )


def _payload_checkpoint(path, marker):
    torch.save(
        dict(state_dict=ToyModel().state_dict(), meta=dict(x=Payload(marker))),
        str(path))
    return str(path)


def _runner_style_checkpoint(model):
    """A checkpoint dict laid out the way ``Runner.save_checkpoint`` does."""
    optim_wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=0.1))
    scheduler = MultiStepLR(optim_wrapper, milestones=[1, 2], by_epoch=False)
    message_hub = MessageHub.get_instance('test_checkpoint_loading')
    for step in range(3):
        loss = model(torch.ones(2, 2)).pow(2).mean()
        optim_wrapper.update_params(loss)
        scheduler.step()
        message_hub.update_scalar('train/loss', loss.item(), count=2)
        message_hub.update_scalar('train/lr', np.float64(0.1 / (step + 1)))
    message_hub.update_info('iter', 3)
    message_hub.update_info('best_score', np.float32(0.5))
    meta = dict(
        epoch=0,
        iter=3,
        seed=np.int64(42),
        experiment_name='toy',
        time='20250101_000000',
        mmengine_version='0.10.7',
        dataset_meta=dict(classes=('a', 'b'), palette=[[0, 0, 0], [1, 1, 1]]),
        cfg='model = dict(type="ToyModel")')
    return dict(
        meta=meta,
        state_dict=weights_to_cpu(get_state_dict(model)),
        message_hub=message_hub.state_dict(),
        optimizer=optim_wrapper.state_dict(),
        param_schedulers=[scheduler.state_dict()])


def test_setup_registers_loaders_only_where_stock_fails():
    allowed = set(torch.serialization.get_safe_globals())
    registered = setup_safe_checkpoint_loading()
    assert registered is not stock_loader_reads_runner_checkpoints()
    schemes = CheckpointLoader._schemes.copy()
    setup_safe_checkpoint_loading()  # idempotent
    assert CheckpointLoader._schemes == schemes
    # torch's global allow-list is never extended
    assert set(torch.serialization.get_safe_globals()) == allowed
    assert HistoryBuffer not in allowed
    local = CheckpointLoader._get_checkpoint_loader('a/b.pth')
    assert (local is load_from_local) is registered
    assert (CheckpointLoader._get_checkpoint_loader('https://x.org/b.pth')
            is load_from_http) is registered
    # other schemes keep mmengine's loaders
    assert CheckpointLoader._get_checkpoint_loader(
        'open-mmlab://resnet50_v1c').__module__ == 'mmengine.runner.checkpoint'


def _stock_schemes() -> dict:
    """mmengine's own entries of ``CheckpointLoader``'s table."""
    return {
        prefix: loader
        for prefix, loader in CheckpointLoader._schemes.items()
        if loader.__module__ == 'mmengine.runner.checkpoint'
    }


def test_setup_changes_nothing_where_stock_loader_works(monkeypatch):
    """``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` makes torch >= 2.6 load as
    torch < 2.6 does (``weights_only=False``): the stock loader works."""
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    stock = _stock_schemes()
    monkeypatch.setattr(CheckpointLoader, '_schemes', dict(stock))
    allowed = set(torch.serialization.get_safe_globals())
    assert stock_loader_reads_runner_checkpoints()
    assert setup_safe_checkpoint_loading() is False
    assert CheckpointLoader._schemes == stock
    assert set(torch.serialization.get_safe_globals()) == allowed


def test_safe_loaders_are_scoped_to_their_block(tmp_path, monkeypatch):
    stock = _stock_schemes()
    monkeypatch.setattr(CheckpointLoader, '_schemes', dict(stock))
    path = str(tmp_path / 'iter_3.pth')
    save_checkpoint(_runner_style_checkpoint(ToyModel()), path)
    with safe_checkpoint_loaders():
        with safe_checkpoint_loaders():  # blocks nest
            assert CheckpointLoader._get_checkpoint_loader(
                path) is load_from_local
        loaded = CheckpointLoader.load_checkpoint(path)
        assert isinstance(loaded['message_hub']['log_scalars']['train/loss'],
                          HistoryBuffer)
    assert CheckpointLoader._schemes == stock


def test_allow_list_is_restored_as_it_was(tmp_path):
    """An entry the process had allowed itself stays allowed after our
    load (torch's ``safe_globals`` block would remove it on exit)."""
    path = str(tmp_path / 'iter_3.pth')
    save_checkpoint(_runner_style_checkpoint(ToyModel()), path)
    before = set(torch.serialization.get_safe_globals())
    torch.serialization.add_safe_globals([HistoryBuffer])
    try:
        load_from_local(path)
        assert HistoryBuffer in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(list(before))
    load_from_local(path)
    assert set(torch.serialization.get_safe_globals()) == before


def test_allow_list_names_both_numpy_core_modules():
    names = {
        entry[1]
        for entry in checkpoint_loading.safe_checkpoint_globals()
        if isinstance(entry, tuple)
    }
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        assert {f'{module}._reconstruct', f'{module}.scalar'} <= names
    # no object / structured dtypes: only numeric and bool
    dtypes = [
        e for e in checkpoint_loading.safe_checkpoint_globals() if
        isinstance(e, type) and issubclass(e, np.dtype) and e is not np.dtype
    ]
    assert type(np.dtype(object)) not in dtypes
    assert type(np.dtype([('a', 'f4')])) not in dtypes
    assert type(np.dtype('float64')) in dtypes


def test_runner_style_checkpoint_loads(tmp_path):
    model = ToyModel()
    checkpoint = _runner_style_checkpoint(model)
    path = str(tmp_path / 'iter_3.pth')
    save_checkpoint(checkpoint, path)
    # the file really needs the allow-list, and nothing else
    with open(path, 'rb') as f:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(f)
        f.seek(0)
        with torch.serialization.safe_globals(
                checkpoint_loading.safe_checkpoint_globals()):
            assert torch.serialization.get_unsafe_globals_in_checkpoint(
                f) == []

    loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    history = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(history, HistoryBuffer)
    assert isinstance(history._log_history, np.ndarray)
    np.testing.assert_array_equal(
        history._log_history,
        checkpoint['message_hub']['log_scalars']['train/loss']._log_history)
    assert loaded['message_hub']['runtime_info']['best_score'] == np.float32(
        0.5)
    assert loaded['meta']['seed'] == 42
    assert loaded['param_schedulers'][0]['milestones'] == {1: 1, 2: 1}
    assert loaded['optimizer']['state'][0]['exp_avg'].shape == (1, 2)

    restored = MessageHub.get_instance('test_checkpoint_loading_restored')
    restored.load_state_dict(loaded['message_hub'])
    assert restored.get_info('iter') == 3

    other = ToyModel()
    load_checkpoint(other, path, map_location='cpu', strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)


def test_numpy1_pickle_names_load(tmp_path):
    """Pickles written under numpy 1.x name ``numpy.core.multiarray``."""
    path = tmp_path / 'np1.pth'
    buffer = HistoryBuffer([1.0, 2.5], [1, 2])
    torch.save(
        dict(buffer=buffer, scalar=np.float64(3.5)),
        str(path),
        _use_new_zipfile_serialization=False)  # plain pickle stream
    data = path.read_bytes()
    old = data.replace(b'numpy._core.multiarray\n', b'numpy.core.multiarray\n')
    assert old != data and b'numpy._core' not in old
    path.write_bytes(old)

    loaded = load_from_local(str(path), map_location='cpu')
    np.testing.assert_array_equal(loaded['buffer']._log_history, [1.0, 2.5])
    assert loaded['scalar'] == 3.5


def test_resume_tiny_runner(tmp_path):
    work_dir = str(tmp_path / 'work')

    def make_runner(max_iters, name, **kwargs):
        return Runner(
            model=ToyModel(),
            work_dir=work_dir,
            experiment_name=name,
            train_dataloader=dict(
                dataset=ToyDataset(),
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                batch_size=4,
                num_workers=0),
            optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.1)),
            param_scheduler=dict(
                type='MultiStepLR',
                milestones=[1, 3],
                by_epoch=False,
                begin=0,
                end=4),
            train_cfg=dict(by_epoch=False, max_iters=max_iters),
            default_hooks=dict(
                checkpoint=dict(
                    type='CheckpointHook', interval=2, by_epoch=False)),
            **kwargs)

    first = make_runner(2, 'first')
    first.train()
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)
    with open(ckpt, 'rb') as f, torch.serialization.safe_globals(
            checkpoint_loading.safe_checkpoint_globals()):
        # the real thing holds HistoryBuffers
        assert torch.serialization.get_unsafe_globals_in_checkpoint(f) == []
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}

    second = make_runner(4, 'second', load_from=ckpt, resume=True)
    second.train()
    assert second.iter == 4
    # lr 0.1 -> 0.01 at iter 1 -> 0.001 at iter 3, across the resume
    assert second.optim_wrapper.get_lr()['lr'] == [pytest.approx(1e-3)]
    losses = second.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 4  # 2 restored + 2 new
    assert not torch.equal(second.model.state_dict()['linear.weight'],
                           weights['linear.weight'])


def test_pickle_payload_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / 'payload_ran'
    path = _payload_checkpoint(tmp_path / 'evil.pth', marker)
    # the env var that disables weights_only elsewhere does not apply here
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')

    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(ToyModel(), path, map_location='cpu')
    assert not marker.exists()
    message = str(info.value)
    assert path in message
    assert 'not allow-listed' in message and 'builtins.exec' in message
    assert 'trusted_checkpoint' in message and '--trust-checkpoint' in message
    assert isinstance(info.value, pickle.UnpicklingError)

    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(path)
    assert not marker.exists()


class AttributeWalk:
    """Unpickles to ``getattr(np.ndarray, 'tofile')``: an allowed class,
    but not one of the HistoryBuffer methods ``getattr`` may resolve."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def test_getattr_is_restricted_to_history_buffer(tmp_path):
    path = str(tmp_path / 'walk.pth')
    torch.save(dict(meta=dict(x=AttributeWalk())), path)
    with pytest.raises(UnsafeCheckpointError, match='tofile'):
        load_from_local(path)


def test_trusted_checkpoint_is_scoped_to_its_file(tmp_path, monkeypatch):
    marker_a, marker_b = tmp_path / 'ran_a', tmp_path / 'ran_b'
    path_a = _payload_checkpoint(tmp_path / 'a.pth', marker_a)
    path_b = _payload_checkpoint(tmp_path / 'b.pth', marker_b)
    monkeypatch.chdir(tmp_path)

    with mmfasternet.trusted_checkpoint('a.pth'):  # relative path resolves
        loaded = CheckpointLoader.load_checkpoint(path_a)
        assert marker_a.exists()  # a trusted file is fully unpickled
        assert set(loaded) == {'state_dict', 'meta'}
        with pytest.raises(UnsafeCheckpointError):
            CheckpointLoader.load_checkpoint(path_b)
        assert not marker_b.exists()

    marker_a.unlink()
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(path_a)
    assert not marker_a.exists()
    assert not checkpoint_loading._trusted


def test_nested_trust_of_one_file_keeps_the_outer_trust(tmp_path, monkeypatch):
    """The inner block (the same file, spelled another way) ends; the
    outer block still trusts the file until it ends too."""
    marker = tmp_path / 'ran'
    path = _payload_checkpoint(tmp_path / 'a.pth', marker)
    monkeypatch.chdir(tmp_path)

    with mmfasternet.trusted_checkpoint(path):
        with mmfasternet.trusted_checkpoint('a.pth'):
            load_from_local(path)
        assert marker.exists()
        marker.unlink()
        load_from_local(path)  # still trusted: the payload runs again
        assert marker.exists()
        marker.unlink()
    with pytest.raises(UnsafeCheckpointError):
        load_from_local(path)
    assert not marker.exists()
    assert not checkpoint_loading._trusted


def test_http_loader_is_safe(tmp_path, monkeypatch):
    source = tmp_path / 'src'
    source.mkdir()
    marker = tmp_path / 'http_payload_ran'
    _payload_checkpoint(source / 'evil.pth', marker)
    torch.save(dict(state_dict=ToyModel().state_dict()), source / 'ok.pth')

    def fake_download(url, dst, **kwargs):
        shutil.copy(source / osp.basename(url), dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', fake_download)
    cache = str(tmp_path / 'cache')
    ok = load_from_http('https://example.org/ok.pth', model_dir=cache)
    assert set(ok) == {'state_dict'}
    with pytest.raises(UnsafeCheckpointError, match='example.org/evil.pth'):
        load_from_http('https://example.org/evil.pth', model_dir=cache)
    assert not marker.exists()


def test_safetensors_file_loads(tmp_path):
    from safetensors.torch import save_file
    model = ToyModel()
    path = str(tmp_path / 'weights.safetensors')
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)

    other = ToyModel()
    load_checkpoint(other, path, map_location='cpu', strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'missing.pth'))


def write_bad_file(path, kind: str) -> str:
    """Write a file that is no checkpoint: ``empty``, ``text``, ``zeros``
    or ``truncated`` (the first half of a real checkpoint)."""
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'text':
        path.write_text('model weights: see the release page\n')
    elif kind == 'zeros':
        path.write_bytes(bytes(4096))
    else:
        torch.save(FasterNet(arch='t0').state_dict(), str(path))
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    return str(path)


BAD_FILES = {
    'empty': 'the file is empty',
    'text': 'neither a PyTorch nor a safetensors file',
    'zeros': 'neither a PyTorch nor a safetensors file',
    'truncated': 'truncated or damaged',
}


def assert_clear_refusal(message: str, path: str, kind: str) -> None:
    """One clear error: names the file, says why, no weights_only advice."""
    assert f'{path!r} is not a readable checkpoint' in message
    assert BAD_FILES[kind] in message
    assert 'weights_only' not in message


@pytest.mark.parametrize('kind', list(BAD_FILES))
def test_bad_file_through_init_cfg_is_named(tmp_path, kind):
    path = write_bad_file(tmp_path / f'{kind}.pth', kind)
    model = FasterNet(
        arch='t0', init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(UnreadableCheckpointError) as info:
        model.init_weights()
    assert_clear_refusal(str(info.value), path, kind)


@pytest.mark.parametrize('kind', ['empty', 'truncated'])
def test_bad_safetensors_file_is_named(tmp_path, kind):
    path = tmp_path / 'weights.safetensors'
    if kind == 'empty':
        path.write_bytes(b'')
    else:
        from safetensors.torch import save_file
        save_file({'w': torch.rand(64, 64)}, str(path))
        path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UnreadableCheckpointError, match='not a readable'):
        load_from_local(str(path))


# ---------------------------------------------------------------------------
# Stock checkpoints, with and without mmfasternet


def _detector(config: str) -> nn.Module:
    """The detector of ``config``, randomly initialised (its backbone's
    ``init_cfg`` removed: no ImageNet weights)."""
    cfg = get_config(config) if '::' in config else Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def mask_rcnn_r50(tmp_path_factory):
    """mmdet's ResNet-50 Mask R-CNN, randomly initialised, and its
    checkpoint saved as a Runner saves one (``meta`` and ``state_dict``)."""
    model = _detector(R50_MASK_RCNN)
    meta = dict(
        epoch=12,
        iter=12,
        cfg=get_config(R50_MASK_RCNN).pretty_text,
        seed=0,
        experiment_name='mask-rcnn_r50_fpn_1x_coco',
        time='20250101_000000',
        mmengine_version=mmengine.__version__,
        dataset_meta=dict(classes=('person', 'car'), palette=[(0, 0, 0)]))
    path = tmp_path_factory.mktemp('r50') / 'mask_rcnn_r50.pth'
    save_checkpoint(
        dict(meta=meta, state_dict=weights_to_cpu(get_state_dict(model))),
        str(path))
    return model, str(path)


@pytest.fixture(scope='module')
def mmseg_runner_checkpoint(toy_ade_root, tmp_path_factory):
    """What a real Runner saves for an mmseg model (the demo's Semantic FPN
    with mmseg's ResNetV1c-18 instead of FasterNet) after 2 iterations on
    the toy ADE set: meta, message hub, optimizer and scheduler states."""
    root = os.path.join(str(toy_ade_root), '')
    work_dir = tmp_path_factory.mktemp('seg_runner')
    cfg = Config.fromfile(SEG_DEMO)
    crop = (64, 64)
    loader = dict(num_workers=0, persistent_workers=False, batch_size=2)
    pipeline = with_sizes(
        cfg.train_dataloader.dataset.pipeline, scale=(128, 96), crop_size=crop)
    cfg.merge_from_dict(
        dict(
            work_dir=str(work_dir),
            model=dict(
                data_preprocessor=dict(size=crop),
                backbone=dict(
                    _delete_=True,
                    type='ResNetV1c',
                    depth=18,
                    norm_cfg=dict(type='BN', requires_grad=True)),
                neck=dict(in_channels=[64, 128, 256, 512])),
            train_dataloader=dict(
                **loader, dataset=dict(data_root=root, pipeline=pipeline)),
            train_cfg=dict(max_iters=2),
            default_hooks=dict(
                logger=dict(interval=1), checkpoint=dict(interval=2))))
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    Runner.from_cfg(cfg).train()
    return str(work_dir / 'iter_2.pth')


def _load_in_fresh_process(paths, **env) -> dict:
    """``tests/stock_loading.py``'s result for ``paths``: loaded without,
    then with mmfasternet, in a new process."""
    output = run_script('tests/stock_loading.py', *paths, **env)
    line = [x for x in output.splitlines() if x.startswith('RESULT ')][-1]
    return json.loads(line[len('RESULT '):])


def test_stock_checkpoints_load_identically(mask_rcnn_r50,
                                            mmseg_runner_checkpoint):
    """mmdet's R-50 Mask R-CNN checkpoint and an mmseg Runner's checkpoint,
    loaded by mmengine's ``CheckpointLoader`` in a fresh process, first
    without mmfasternet, then after ``import mmfasternet``; under torch's
    default and with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (the stock
    loader working, as on torch < 2.6).

    "Identically": the same content (types, dtypes, shapes, the bytes of
    every tensor and array, numpy scalars and HistoryBuffers) as the
    process loaded before importing mmfasternet. Where the stock loader
    fails on the Runner's checkpoint (torch >= 2.6's ``weights_only``
    default: its HistoryBuffers), the import registers mmfasternet's
    loaders for local paths and http(s) and changes nothing else, and the
    checkpoint then loads to the content the stock loader returns where it
    works.
    """
    detector, seg = mask_rcnn_r50[1], mmseg_runner_checkpoint
    stock_works = dict(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1')
    runs = dict(
        default=_load_in_fresh_process([detector, seg]),
        stock_works=_load_in_fresh_process([detector, seg], **stock_works))
    reference = runs['stock_works']['without'][seg]
    assert 'loaded' in reference, reference
    for name, run in runs.items():
        without, with_ = run['without'], run['with']
        before, after = run['before'], run['after']
        assert 'loaded' in without[detector], without[detector]
        assert with_[detector] == without[detector]
        assert after['safe_globals'] == before['safe_globals']
        assert with_[seg] == reference
        if 'loaded' in without[seg]:  # the stock loader works
            assert after['schemes'] == before['schemes'], name
            assert without[seg] == reference
        else:
            assert without[seg]['error'] == 'UnpicklingError'
            changed = {
                prefix: scheme
                for prefix, scheme in after['schemes'].items()
                if before['schemes'].get(prefix) != scheme
            }
            assert changed == OUR_SCHEMES, name
            assert set(after['schemes']) == set(before['schemes'])
    # On torch >= 2.6 both cases happen; the default one is the second.
    default_fails = 'error' in runs['default']['without'][seg]
    assert default_fails is not stock_loader_reads_runner_checkpoints()


def test_runner_checkpoint_has_what_the_stock_loader_refuses(
        mmseg_runner_checkpoint):
    """The mmseg checkpoint is a real test of the allow-list: it holds
    HistoryBuffers with numpy arrays, and numpy scalars."""
    unsafe = set(
        torch.serialization.get_unsafe_globals_in_checkpoint(
            mmseg_runner_checkpoint))
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
    assert any(name.endswith('multiarray._reconstruct') for name in unsafe)
    assert any(name.endswith('multiarray.scalar') for name in unsafe), unsafe


# ---------------------------------------------------------------------------
# Another detector's checkpoint into a FasterNet detector


def test_other_detectors_checkpoint_lends_its_heads(mask_rcnn_r50):
    """R-50 Mask R-CNN's checkpoint into FasterNet-T0 Mask R-CNN with
    ``strict=False``: the heads load, FPN's tensors of the same shape load
    (its lateral convs take other channels), the backbone is left as it is
    with one warning; ``strict=True`` raises."""
    r50, path = mask_rcnn_r50
    theirs = r50.state_dict()
    model = _detector(FASTERNET_MASK_RCNN)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    records = logged_during(
        lambda: load_checkpoint(model, path, map_location='cpu', strict=False))
    ours = model.state_dict()
    heads = [k for k in theirs if k.startswith(('rpn_head.', 'roi_head.'))]
    assert heads and all(torch.equal(ours[k], theirs[k]) for k in heads)
    fpn = [k for k in theirs if k.startswith('neck.fpn_convs.')]
    assert fpn and all(torch.equal(ours[k], theirs[k]) for k in fpn)
    lateral = [k for k in ours if k.startswith('neck.lateral_convs.')]
    assert all(torch.equal(ours[k], before[k]) for k in lateral)
    backbone = [k for k in ours if k.startswith('backbone.')]
    assert all(torch.equal(ours[k], before[k]) for k in backbone)
    warnings = [
        r.getMessage() for r in records if r.levelno == logging.WARNING
        and r.getMessage().startswith('FasterNet-T0')
    ]
    assert warnings == [
        "FasterNet-T0 at 'backbone' is not loaded from this checkpoint: its "
        f"{sum(k.startswith('backbone.') for k in theirs)} 'backbone.' "
        "tensors are another backbone's (e.g. backbone.conv1.weight). It "
        'keeps its current weights; the rest of the model is loaded.'
    ]

    with pytest.raises(RuntimeError, match='missing keys.*backbone'):
        load_checkpoint(model, path, map_location='cpu', strict=True)


def test_foreign_backbone_weights_alone_still_raise(mask_rcnn_r50):
    """Loading the backbone itself (what ``init_cfg`` does, with mmengine's
    ``strict=False``) leaves nothing else to load: it stays an error."""
    model = FasterNet('t0')
    with pytest.raises(RuntimeError, match='unloaded.*prefix'):
        model.load_state_dict(
            mask_rcnn_r50[0].backbone.state_dict(), strict=False)


def test_absent_output_norms_are_warned_about_in_a_detector():
    """A detector checkpoint whose backbone lacks the output norms loads
    under ``strict=True`` (the norms keep their initialisation), and says
    so in a warning."""
    model = _detector(FASTERNET_MASK_RCNN)
    state = {
        k: v
        for k, v in model.state_dict().items()
        if not k.startswith('backbone.norm3.')
    }
    records = logged_during(lambda: model.load_state_dict(state, strict=True))
    warnings = [
        r.getMessage() for r in records if r.levelno == logging.WARNING
    ]
    assert warnings == [
        "FasterNet-T0 at 'backbone': output norms norm3 are not in the "
        'checkpoint and keep their initialisation (a strict load does not '
        'report them missing)'
    ]
