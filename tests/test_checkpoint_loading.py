"""Checkpoints load with ``weights_only`` on; pickle payloads never run."""
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.model import BaseModel
from mmengine.optim import MultiStepLR, OptimWrapper
from mmengine.runner import (CheckpointLoader, Runner, get_state_dict,
                             load_checkpoint, save_checkpoint, weights_to_cpu)
from torch.utils.data import Dataset

import mmfasternet
from mmfasternet import checkpoint_loading
from mmfasternet.checkpoint_loading import (UnreadableCheckpointError,
                                            UnsafeCheckpointError,
                                            load_from_http, load_from_local,
                                            setup_safe_checkpoint_loading)
from mmfasternet.models import FasterNet


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


def test_setup_is_idempotent_and_registers_loaders():
    before = set(torch.serialization.get_safe_globals())
    setup_safe_checkpoint_loading()
    setup_safe_checkpoint_loading()
    assert set(torch.serialization.get_safe_globals()) == before
    assert HistoryBuffer in before
    assert CheckpointLoader._get_checkpoint_loader(
        'a/b.pth') is load_from_local
    assert CheckpointLoader._get_checkpoint_loader(
        'https://x.org/b.pth') is load_from_http
    # other schemes keep mmengine's loaders
    assert CheckpointLoader._get_checkpoint_loader(
        'open-mmlab://resnet50_v1c').__module__ == 'mmengine.runner.checkpoint'


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
        assert torch.serialization.get_unsafe_globals_in_checkpoint(f) == []

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
    with open(ckpt, 'rb') as f:  # the real thing holds HistoryBuffers
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
