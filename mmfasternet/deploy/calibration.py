"""Calibration images for INT8 quantization, preprocessed as at inference.

:class:`CalibrationSet` reads the images of one of the config's
dataloaders (``train``, ``val`` or ``test``) through the config's *test*
pipeline, whatever the split (the training pipeline's mosaic, mix-up and
colour jitter would calibrate the ranges on images the model never sees at
inference), and the model's data preprocessor, then pads them to the
graph's size and adds ``img_shape`` and ``rescale``, as
:class:`~.backend_detector.BackendDetector` does.
"""
import copy
from typing import Iterator, List

import numpy as np
import torch
import torch.nn as nn

from .backend_detector import end2end_inputs

SPLITS = ('train', 'val', 'test')


class CalibrationError(ValueError):
    """No calibration image, or one the graph cannot take."""


class CalibrationSet:
    """The first ``size`` images of a config's dataloader, as the
    end-to-end graph's inputs, one image a batch.

    Iterating loads and preprocesses them lazily (a COCO-size set does not
    fit in memory at once), with a progress bar.

    Args:
        cfg (Config): The config (its ``<split>_dataloader`` and
            ``test_dataloader``'s pipeline).
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        size (int): Images to use (fewer if the set is smaller).
        data_preprocessor (nn.Module): The model's data preprocessor.
        graph_hw (Sequence[int]): (H, W) of the graph's input.

    Raises:
        CalibrationError: ``size`` is below 1, or the dataset has no
            image.
    """

    def __init__(self, cfg, split: str, size: int,
                 data_preprocessor: nn.Module, graph_hw) -> None:
        if split not in SPLITS:
            raise CalibrationError(
                f'calibration split must be one of {SPLITS}, got {split!r}')
        if size < 1:
            raise CalibrationError(
                f'the calibration set is empty (--calib-size {size}); '
                'calibrate on at least 1 image (hundreds for real use)')
        self.loader = _build_loader(cfg, split)
        available = len(self.loader.dataset)
        if available == 0:
            raise CalibrationError(
                f'the calibration set is empty: the {split}_dataloader\'s '
                'dataset has no image (ann_file '
                f'{cfg[f"{split}_dataloader"].dataset.get("ann_file")})')
        self.split = split
        self.size = min(size, available)
        self.preprocessor = data_preprocessor
        self.graph_hw = tuple(graph_hw)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[List[np.ndarray]]:
        from mmengine.utils import ProgressBar
        progress = ProgressBar(self.size)
        for index, data in enumerate(self.loader):
            if index == self.size:
                break
            inputs = self.preprocess(data, index)
            progress.update()
            if index + 1 == self.size:
                print()  # ends the progress bar's line
            yield inputs

    def first(self) -> List[np.ndarray]:
        """The first image's inputs, without a progress bar (to check the
        set before a long export)."""
        return self.preprocess(next(iter(self.loader)), 0)

    def preprocess(self, data: dict, index: int) -> List[np.ndarray]:
        """A dataloader batch as the graph's three inputs.

        Raises:
            CalibrationError: The image is larger than the graph's input.
        """
        with torch.no_grad():
            batch = self.preprocessor(data, False)
        try:
            return end2end_inputs(batch['inputs'], batch['data_samples'],
                                  self.graph_hw)
        except ValueError as exc:
            path = batch['data_samples'][0].get('img_path', f'#{index}')
            h, w = batch['inputs'].shape[2:]
            raise CalibrationError(
                f'calibration image {path} is {h}x{w} after the test '
                'pipeline and data preprocessor, larger than the graph\'s '
                f'{self.graph_hw[0]}x{self.graph_hw[1]} input; quantize at '
                'a --shape that holds the pipeline\'s images') from exc


def _build_loader(cfg, split: str):
    """``<split>_dataloader`` with the test pipeline, one image a batch,
    in order, in this process."""
    from mmengine.runner import Runner
    key = f'{split}_dataloader'
    if not cfg.get(key):
        raise CalibrationError(f'the config has no {key} to calibrate on')
    loader = copy.deepcopy(cfg[key])
    loader = dict(
        loader,
        batch_size=1,
        num_workers=0,
        persistent_workers=False,
        pin_memory=False,
        sampler=dict(type='DefaultSampler', shuffle=False))
    loader.pop('batch_sampler', None)
    dataset = loader['dataset']
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']  # a dataset wrapper's
    dataset['pipeline'] = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    dataset['test_mode'] = True  # keep images without annotations too
    # One process reads it: no need to serialize (which fails when empty).
    dataset['serialize_data'] = False
    return Runner.build_dataloader(loader)
