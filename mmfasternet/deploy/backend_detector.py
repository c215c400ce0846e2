"""A detector whose network is an exported end-to-end model file.

:class:`BackendDetector` takes the config's data preprocessor and the file
from ``tools/deploy/export_onnx.py --mode end2end`` (or its INT8 version
from ``tools/deploy/quantize.py``), runs it with ONNX
Runtime or OpenVINO and returns mmdet ``DetDataSample`` predictions, so
that the config's evaluator (``tools/test.py --backend``) and mmdet's
``DetInferencer`` (``demo/image_demo.py --backend``) use it like the
PyTorch model. Masks come back at each image's original size: RTMDet-Ins's
logits are resized, Mask R-CNN's per-box probabilities pasted, as mmdet
does.
"""
import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from .backends import build_backend
from .detection_matching import (DetectionMatch, Detections, match_detections,
                                 merge_matches)
from .mask_rcnn import MASKS_PROP, ROI_MASKS
from .model_files import check_engine, read_model_file

END2END_OUTPUTS = ['batch_index', 'boxes', 'scores', 'labels']


@MODELS.register_module()
class BackendDetector(BaseModel):
    """Run an end-to-end detector file (ONNX) as an mmdet detector.

    Args:
        model_file (str): The ``.onnx`` file, or for OpenVINO also an IR
            ``.xml`` (``tools/deploy/quantize.py``; outputs ``batch_index``,
            ``boxes``, ``scores``, ``labels``, and ``masks``: RTMDet-Ins's
            logits at input size, or, when the file's metadata says
            ``roi_probs``, Mask R-CNN's probabilities inside each box).
        backend (str): ``'onnxruntime'`` or ``'openvino'``.
            Default: 'onnxruntime'.
        data_preprocessor (dict, optional): The config's
            ``model.data_preprocessor``.
        mask_thr_binary (float): Threshold of the binary masks (the
            config's ``mask_thr_binary``). Default: 0.5.
    """

    def __init__(self,
                 model_file: str,
                 backend: str = 'onnxruntime',
                 data_preprocessor: Optional[dict] = None,
                 mask_thr_binary: float = 0.5) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.mask_thr_binary = mask_thr_binary
        self.backend = backend
        self.runner = build_backend(backend, model_file)
        outputs = list(self.runner.output_names)
        self.with_masks = outputs == END2END_OUTPUTS + ['masks']
        if outputs != END2END_OUTPUTS and not self.with_masks:
            raise ValueError(
                f'{model_file} has outputs {self.runner.output_names}, not '
                f'those of an end-to-end detector ({END2END_OUTPUTS}); '
                'export it with tools/deploy/export_onnx.py --mode end2end')
        info = read_model_file(model_file)
        self.roi_masks = info.metadata.get(MASKS_PROP) == ROI_MASKS
        self.graph_batch = info.input_shape[0]  # None: dynamic
        self.graph_hw = tuple(info.input_shape[2:])
        # A parameter-free model still needs a device for BaseModel.
        self.register_buffer('_device_probe', torch.zeros(1), False)

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[list] = None,
                mode: str = 'predict') -> Union[list, dict]:
        if mode != 'predict':
            raise RuntimeError(f'{type(self).__name__} only predicts '
                               f'(mode={mode!r})')
        step = self.graph_batch or inputs.shape[0]
        for start in range(0, inputs.shape[0], step):
            self._predict_chunk(inputs[start:start + step],
                                data_samples[start:start + step])
        return data_samples

    def _predict_chunk(self, inputs: torch.Tensor, samples: List) -> None:
        from mmengine.structures import InstanceData
        feed = end2end_inputs(inputs, samples, self.graph_hw)
        outputs = self.runner(feed)
        rescale = feed[2]
        batch_index, boxes, scores, labels = outputs[:4]
        for b, sample in enumerate(samples):
            keep = batch_index == b
            pred = InstanceData()
            pred.bboxes = torch.from_numpy(boxes[keep])
            pred.scores = torch.from_numpy(scores[keep])
            pred.labels = torch.from_numpy(labels[keep])
            if self.roi_masks:
                pred.masks = self._paste_masks(
                    torch.from_numpy(outputs[4][keep]), pred.bboxes, sample)
            elif self.with_masks:
                pred.masks = self._masks(
                    torch.from_numpy(outputs[4][keep]), rescale[b], sample)
            sample.pred_instances = pred

    def _masks(self, logits: torch.Tensor, rescale: np.ndarray,
               sample) -> torch.Tensor:
        """Logits at input size to binary masks at the original size, as
        mmdet's RTMDet-Ins does (its resize takes the width's factor for
        both axes' lengths in that order, reproduced here)."""
        ori_h, ori_w = sample.ori_shape[:2]
        if logits.shape[0] == 0:
            return torch.zeros((0, ori_h, ori_w), dtype=torch.bool)
        size = [
            math.ceil(logits.shape[-2] * float(rescale[0])),
            math.ceil(logits.shape[-1] * float(rescale[1]))
        ]
        logits = F.interpolate(
            logits.unsqueeze(0),
            size=size,
            mode='bilinear',
            align_corners=False)[0, :, :ori_h, :ori_w]
        return logits.sigmoid() > self.mask_thr_binary

    def _paste_masks(self, probs: torch.Tensor, boxes: torch.Tensor,
                     sample) -> torch.Tensor:
        """Mask R-CNN's (M, h, w) probabilities inside the boxes (original
        image coordinates) pasted into the original image, one box at a
        time, as mmdet's ``FCNMaskHead`` does on the CPU (same function:
        grid sampling of each box's region, then ``mask_thr_binary``; a
        negative threshold gives uint8 masks x 255, as there)."""
        from mmdet.models.roi_heads.mask_heads.fcn_mask_head import \
            _do_paste_mask
        ori_h, ori_w = sample.ori_shape[:2]
        binary = self.mask_thr_binary >= 0
        masks = torch.zeros((probs.shape[0], ori_h, ori_w),
                            dtype=torch.bool if binary else torch.uint8)
        for i in range(probs.shape[0]):
            pasted, region = _do_paste_mask(
                probs[i:i + 1, None],
                boxes[i:i + 1],
                ori_h,
                ori_w,
                skip_empty=True)
            masks[(slice(i, i + 1), ) + region] = (
                pasted >= self.mask_thr_binary if binary else
                (pasted * 255).to(torch.uint8))
        return masks


def end2end_inputs(inputs: torch.Tensor, samples: Sequence,
                   graph_hw: Sequence[int]) -> List[np.ndarray]:
    """The three inputs of an end-to-end graph for a preprocessed batch.

    Args:
        inputs (torch.Tensor): (N, 3, h, w), the data preprocessor's
            output (normalised, padded with 0).
        samples (Sequence[DetDataSample]): Their data samples
            (``img_shape``, ``scale_factor``).
        graph_hw (Sequence[int]): (H, W) of the graph's input.

    Returns:
        list[np.ndarray]: ``input`` padded with 0 (as the data
        preprocessor pads) to (H, W), ``img_shape`` (N, 2) and
        ``rescale`` (N, 2), 1 / scale factor.

    Raises:
        ValueError: The batch is larger than the graph's input.
    """
    h, w = graph_hw
    if inputs.shape[2] > h or inputs.shape[3] > w:
        raise ValueError(f'batch of {tuple(inputs.shape[2:])} images is '
                         f'larger than the exported graph ({h}, {w}); '
                         'export at the test pipeline\'s size')
    padded = F.pad(inputs, (0, w - inputs.shape[3], 0, h - inputs.shape[2]))
    img_shape = np.array([s.img_shape for s in samples], np.float32)
    rescale = np.array([[1 / f for f in s.scale_factor] for s in samples],
                       np.float64).astype(np.float32)
    return [padded.float().cpu().numpy(), img_shape, rescale]


def final_test_cfg(cfg) -> dict:
    """The ``test_cfg`` of a detector's last stage (Mask R-CNN's ``rcnn``),
    which sets ``score_thr``, ``max_per_img`` and ``mask_thr_binary``."""
    test_cfg = cfg.model.get('test_cfg') or {}
    return test_cfg.get('rcnn') or test_cfg  # two-stage detectors


def backend_model_config(cfg, model_file: str, backend: str) -> None:
    """Make a test config evaluate ``model_file`` through ``backend``.

    Replaces ``cfg.model`` by a :class:`BackendDetector` with the config's
    data preprocessor, loads no checkpoint, and drops ``custom_hooks``
    (EMA and pipeline switches act on PyTorch weights and training).

    Args:
        cfg (Config): A detection config, modified in place.
        model_file (str): The end-to-end ``.onnx`` file (or OpenVINO IR
            ``.xml``).
        backend (str): ``'onnxruntime'`` or ``'openvino'``.

    Raises:
        ModelFileError: ``model_file`` is not a model file, or not one
            that ``backend`` reads.
    """
    check_engine(model_file, backend)
    test_cfg = final_test_cfg(cfg)
    cfg.model = dict(
        type='BackendDetector',
        model_file=model_file,
        backend=backend,
        data_preprocessor=cfg.model.get('data_preprocessor'),
        mask_thr_binary=test_cfg.get('mask_thr_binary', 0.5))
    cfg.load_from = None
    cfg.custom_hooks = []


class ImageCheck(NamedTuple):
    """What :func:`compare_on_images` found, over all images."""
    images: int
    #: The detections paired as sets (:mod:`.detection_matching`).
    match: DetectionMatch
    mask_disagreement: float  # largest fraction of differing pixels

    @property
    def detections(self) -> int:
        """PyTorch's detections."""
        return self.match.expected


def compare_on_images(model: torch.nn.Module,
                      cfg,
                      model_file: str,
                      images: Sequence[str],
                      backends: Sequence[str],
                      box_tol: float = 0.01,
                      score_tol: float = 1e-4) -> Dict[str, ImageCheck]:
    """Predict real images with the PyTorch detector and with the exported
    file on each engine, all through the config's test pipeline and data
    preprocessor (mmdet's ``inference_detector``), and compare the
    detections as sets (:func:`~.detection_matching.match_detections`,
    with the config's ``score_thr`` and ``max_per_img``).

    The random-input check of ``export_onnx.py`` may see no detection from
    a trained model; on real images it compares what the model finds.

    Args:
        model (torch.nn.Module): The detector, weights loaded, eval mode.
        cfg (Config): Its config (``test_dataloader``'s pipeline is used).
        model_file (str): The end-to-end ``.onnx`` file.
        images (Sequence[str]): Image files.
        backends (Sequence[str]): ``'onnxruntime'`` and/or ``'openvino'``.
        box_tol (float): Largest accepted box coordinate difference, in
            pixels of the original image. Default: 0.01.
        score_tol (float): Largest accepted score difference.
            Default: 1e-4.

    Returns:
        dict[str, ImageCheck]: By engine, the match and the largest mask
        difference of the paired detections.
    """
    import copy

    from mmdet.apis import inference_detector
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model.cfg = cfg
    with torch.no_grad():
        expected = [inference_detector(model, image) for image in images]
    test_cfg = final_test_cfg(cfg)
    limits = dict(
        box_tol=box_tol,
        score_tol=score_tol,
        score_thr=test_cfg.get('score_thr'),
        max_per_img=test_cfg.get('max_per_img'))
    checks = {}
    for backend in backends:
        engine_cfg = copy.deepcopy(cfg)
        backend_model_config(engine_cfg, model_file, backend)
        engine = MODELS.build(engine_cfg.model).eval()
        engine.cfg = cfg
        with torch.no_grad():
            checks[backend] = _compare_predictions(
                [pred.pred_instances for pred in expected], [
                    inference_detector(engine, image).pred_instances
                    for image in images
                ], **limits)
    return checks


def _compare_predictions(expected: list, actual: list, **limits) -> ImageCheck:
    """``actual`` against ``expected``, the images' ``pred_instances``,
    paired as sets with ``limits`` (``match_detections``' arguments)."""
    matches, mask = [], 0.
    for ref, got in zip(expected, actual):
        found = match_detections(
            Detections.of(ref), Detections.of(got), **limits)
        matches.append(found)
        if 'masks' in ref and found.matched:
            rows, cols = (torch.from_numpy(p) for p in found.pairs.T)
            differ = ref.masks[rows].bool() != got.masks[cols].bool()
            mask = max(mask, float(differ.float().mean()))
    return ImageCheck(len(expected), merge_matches(matches), mask)
