"""tools/deploy/export_onnx.py as a user runs it: what it refuses, with one
``error:`` line naming the module and exit code 1 (no traceback), and the
second-size check of a dynamic-shape file; the checkpoint loader's
messages for keys and shapes that do not fit; the module an input size
the model cannot run fails in.

The toy RTMDet-T0 config with random weights, at small input sizes.
"""
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmfasternet.deploy import ExportError, export_onnx, load_export_checkpoint
from tool_runner import REPO, run_tool

pytest.importorskip('onnxruntime')

DET_CONFIG = str(REPO / 'configs' / 'demo' / 'rtmdet_fasternet_t0_toy.py')
T1_CONFIG = str(REPO / 'configs' / 'rtmdet_fasternet_t1_8xb32-300e_coco.py')


def refused(*args) -> str:
    """Run the tool expecting failure; return its single ``error:`` line."""
    output = run_tool('deploy/export_onnx.py', *args, expect_failure=True)
    assert 'Traceback' not in output, output
    errors = [line for line in output.splitlines() if 'error:' in line]
    assert len(errors) == 1 and errors[0].startswith('error: '), output
    assert 'exported' not in output
    return errors[0]


def save_state(model: torch.nn.Module, path) -> str:
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def toy_rtmdet(arch: str = 't0') -> torch.nn.Module:
    """The toy RTMDet; with ``arch='t1'`` its backbone and neck widths are
    FasterNet-T1's (the T1 COCO config's)."""
    cfg = Config.fromfile(DET_CONFIG)
    if arch == 't1':
        t1 = Config.fromfile(T1_CONFIG).model
        cfg.model.backbone.arch = t1.backbone.arch
        cfg.model.neck.in_channels = t1.neck.in_channels
    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def test_input_size_the_neck_cannot_run(tmp_path):
    """120x120: FasterNet's stride-32 map is 3x3, upsampled to 6x6 against
    the 7x7 stride-16 map; the neck's concatenation fails in the PyTorch
    pre-run, before any tracing, and the error names the neck."""
    with pytest.raises(ExportError) as info:
        export_onnx(
            toy_rtmdet().eval(),
            str(tmp_path / 'x.onnx'),
            mode='end2end',
            input_shape=(120, 120))
    error = str(info.value)
    assert 'forward pass at input 1x3x120x120 failed in module neck ' \
        '(CSPNeXtPAFPN)' in error
    assert 'RuntimeError: Sizes of tensors must match' in error
    assert not (tmp_path / 'x.onnx').exists()


def test_shape_that_32_does_not_divide_is_refused(tmp_path):
    """The tool refuses such a --shape before building any graph, and says
    which sizes would do."""
    error = refused(DET_CONFIG, '--out', str(tmp_path / 'x.onnx'), '--shape',
                    '120', '128')
    assert error == ('error: input size 120x128: RTMDet needs a height and '
                     'width that 32 divides (its backbone\'s last stride or '
                     'its data preprocessor\'s padding); try --shape 128 '
                     '128')
    assert not (tmp_path / 'x.onnx').exists()


def test_check_image_with_features_mode_is_refused(tmp_path):
    """--check-image compares detections: with --mode features it would
    compare nothing, so the tool refuses instead of ignoring it."""
    image = tmp_path / 'image.jpg'
    image.write_bytes(b'')  # only its existence is checked before
    error = refused(DET_CONFIG, '--out', str(tmp_path / 'x.onnx'), '--mode',
                    'features', '--shape', '64', '64', '--check-image',
                    str(image))
    assert '--check-image compares the detections of an end2end graph' \
        in error
    assert not (tmp_path / 'x.onnx').exists()


def test_checkpoint_of_another_variant(tmp_path):
    """A T1 detector's checkpoint for the T0 config: refused, naming the
    backbone, instead of exporting partly random weights."""
    ckpt = save_state(toy_rtmdet('t1'), tmp_path / 't1.pth')
    error = refused(DET_CONFIG, ckpt, '--out', str(tmp_path / 'x.onnx'))
    assert f'checkpoint {ckpt} does not fit the RTMDet' in error
    assert 'in module backbone (FasterNet)' in error
    assert re.search(
        r'patch_embed\S* \(checkpoint \(64, 3, 4, 4\) vs model '
        r'\(40, 3, 4, 4\)\)', error), error


def test_checkpoint_keys_and_shapes_that_do_not_fit(tmp_path):
    """load_export_checkpoint (the tool's loader): the head's keys missing
    and one unknown key, or one tensor of another shape, are refused with
    the first keys and their modules."""
    model = toy_rtmdet()
    state = {
        k: v
        for k, v in model.state_dict().items() if not k.startswith('bbox_head')
    }
    state['neck.extra.weight'] = torch.zeros(1)
    torch.save({'state_dict': state}, tmp_path / 'partial.pth')
    with pytest.raises(ExportError) as info:
        load_export_checkpoint(model, str(tmp_path / 'partial.pth'))
    error = str(info.value)
    assert re.search(
        r'\d+ missing keys \(bbox_head\.cls_convs\.0\.\S+, '
        r'.*\) in bbox_head\.cls_convs\.0, ', error), error
    assert ('1 unexpected key (neck.extra.weight) in neck.extra.weight'
            in error), error
    state = model.state_dict()
    state['neck.reduce_layers.0.conv.weight'] = torch.zeros(3, 3, 1, 1)
    torch.save({'state_dict': state}, tmp_path / 'resized.pth')
    with pytest.raises(ExportError) as info:
        load_export_checkpoint(model, str(tmp_path / 'resized.pth'))
    assert ('1 key of another shape (neck.reduce_layers.0.conv.weight: '
            '(3, 3, 1, 1) in the file, (160, 320, 1, 1) in the model) in '
            'neck.reduce_layers.0.' in str(info.value)), str(info.value)


def test_dynamic_shape_is_checked_at_a_second_size(tmp_path):
    output = run_tool('deploy/export_onnx.py', DET_CONFIG, '--out',
                      str(tmp_path / 'feats.onnx'), '--mode', 'features',
                      '--shape', '64', '96', '--dynamic-shape',
                      '--dynamic-batch')
    for size in ('1x3x64x96', '2x3x96x160'):
        assert re.search(
            rf'onnxruntime vs PyTorch at {size}: max relative error \S+ '
            r'\(within tolerance 0.0001\)$', output, re.MULTILINE), output
    assert 'exported features graph' in output.splitlines()[-1]
