"""Mask R-CNN (and Faster R-CNN) from image to detections in one graph.

:class:`MaskRCNNEnd2End` has the graph interface of
:class:`~mmfasternet.deploy.wrappers.RTMDetEnd2End`; only the pasting of
each detection's 28x28 mask into its original image runs outside, in
:class:`~mmfasternet.deploy.BackendDetector`.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .wrappers import batched_nms, clip_boxes, flatten_level, gather_rows

#: ONNX metadata key telling :class:`BackendDetector` what ``masks`` holds.
MASKS_PROP = 'mmfasternet_masks'
#: ``masks`` are (M, h, w) probabilities inside each box, to be pasted.
ROI_MASKS = 'roi_probs'


def _unsupported_part(model: nn.Module) -> Optional[str]:
    """Why ``model`` is not a two-stage detector the wrapper reproduces
    (None when it is)."""
    if getattr(model, 'rpn_head', None) is None:
        return 'an RPNHead and a StandardRoIHead'
    from mmdet.models.dense_heads import RPNHead
    from mmdet.models.roi_heads import StandardRoIHead
    from mmdet.models.roi_heads.bbox_heads import BBoxHead
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    rpn_head = getattr(model, 'rpn_head', None)
    roi_head = getattr(model, 'roi_head', None)
    if type(rpn_head) is not RPNHead or type(roi_head) is not StandardRoIHead:
        return 'an RPNHead and a StandardRoIHead'
    if roi_head.with_shared_head:
        return 'no shared RoI head'
    bbox_head = roi_head.bbox_head
    if not isinstance(bbox_head, BBoxHead) or bbox_head.custom_cls_channels:
        return 'a BBoxHead with softmax scores'
    for coder in (rpn_head.bbox_coder, bbox_head.bbox_coder):
        if type(coder) is not DeltaXYWHBBoxCoder or coder.add_ctr_clamp:
            return 'DeltaXYWHBBoxCoder box coders without add_ctr_clamp'
    extractors = [roi_head.bbox_roi_extractor]
    if roi_head.with_mask:
        if type(roi_head.mask_head) is not FCNMaskHead:
            return 'an FCNMaskHead'
        extractors.append(roi_head.mask_roi_extractor)
    for extractor in extractors:
        if type(extractor) is not SingleRoIExtractor:
            return 'SingleRoIExtractor RoI extractors'
        layer = extractor.roi_layers[0]
        if (type(layer).__name__ != 'RoIAlign' or not layer.aligned
                or layer.pool_mode != 'avg'):
            return 'aligned average RoIAlign layers'
    return None


def mask_rcnn_supported(model: nn.Module) -> bool:
    """Whether :class:`MaskRCNNEnd2End` can export ``model``."""
    return _unsupported_part(model) is None


def delta2bbox(anchors: Tensor, deltas: Tensor, coder: nn.Module,
               high: Tensor) -> Tensor:
    """mmdet's ``DeltaXYWHBBoxCoder.decode`` with the same arithmetic in the
    same order, on broadcastable ``anchors`` and ``deltas`` (..., 4), then
    clipped to [0, ``high``] (``high`` (..., 4): w, h, w, h) when the coder
    clips."""
    means = deltas.new_tensor(coder.means)
    stds = deltas.new_tensor(coder.stds)
    deltas = deltas * stds + means
    pxy = (anchors[..., :2] + anchors[..., 2:]) * 0.5
    pwh = anchors[..., 2:] - anchors[..., :2]
    max_ratio = float(np.abs(np.log(16 / 1000)))  # decode's wh_ratio_clip
    dwh = deltas[..., 2:].clamp(min=-max_ratio, max=max_ratio)
    gxy = pxy + pwh * deltas[..., :2]
    gwh = pwh * dwh.exp()
    boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
    return clip_boxes(boxes, high) if coder.clip_border else boxes


def roi_align_levels(extractor: nn.Module, feats: Sequence[Tensor],
                     batch_index: Tensor, boxes: Tensor) -> Tensor:
    """mmdet's ``SingleRoIExtractor`` as static-shape graph code.

    Each RoI's level is mmdet's ``floor(log2(sqrt(area) / finest_scale +
    1e-6))`` clamped to the levels, written as comparisons with powers of
    two (ONNX has no Log2; the comparisons give the same integer without a
    rounded logarithm). Every level's RoIAlign (``torchvision.ops``,
    exported as ONNX ``RoiAlign`` with ``half_pixel`` coordinates: mmcv's
    ``aligned=True``) runs on all RoIs, those of other levels replaced by
    empty boxes (no samples, no cost with adaptive sampling), and
    ``torch.where`` keeps each RoI's own level.

    Args:
        extractor (nn.Module): The ``SingleRoIExtractor``.
        feats (Sequence[Tensor]): The neck's outputs (extra ones unused).
        batch_index (Tensor): (K,) image of each RoI.
        boxes (Tensor): (K, 4) RoIs in input coordinates.

    Returns:
        Tensor: (K, C, h, w) RoI features.
    """
    from torchvision.ops import roi_align
    rois = torch.cat([batch_index.to(boxes.dtype).unsqueeze(1), boxes], 1)
    scale = torch.sqrt(
        (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    scale = scale / extractor.finest_scale + 1e-6
    num_levels = extractor.num_inputs
    level = torch.zeros_like(batch_index)
    for i in range(1, num_levels):
        level = level + (scale >= 2.0**i).to(level.dtype)
    out = None
    empty = torch.zeros_like(rois)
    for i, layer in enumerate(extractor.roi_layers[:num_levels]):
        mask = (level == i).unsqueeze(1)
        feat = roi_align(
            feats[i],
            torch.where(mask, rois, empty),
            output_size=layer.output_size,
            spatial_scale=layer.spatial_scale,
            sampling_ratio=layer.sampling_ratio,
            aligned=True)
        mask = mask.reshape(-1, 1, 1, 1)
        out = feat if out is None else torch.where(mask, feat, out)
    return out


class MaskRCNNEnd2End(nn.Module):
    """Mask R-CNN (or Faster R-CNN) with proposals, RoI heads and NMS.

    mmdet's ``TwoStageDetector`` with an ``RPNHead`` and a
    ``StandardRoIHead`` (``BBoxHead`` family, e.g. ``Shared2FCBBoxHead``;
    ``FCNMaskHead``; ``SingleRoIExtractor`` with aligned ``RoIAlign``)::

        inputs:  input (B, 3, H, W), img_shape (B, 2) as (h, w),
                 rescale (B, 2) as (1 / w_scale, 1 / h_scale)
        outputs: batch_index (M,), boxes (M, 4), scores (M,), labels (M,),
                 masks (M, h, w): probabilities inside each box (28x28)

    The steps are those of mmdet's ``predict``:

    * RPN, per level: sigmoid objectness, the ``nms_pre`` best anchors,
      deltas decoded at the anchors (constants of the export size) and
      clipped to ``img_shape``; boxes not wider and higher than
      ``min_bbox_size`` dropped; NMS across levels with the level as the
      class (mmcv's ``batched_nms`` coordinate offset trick) as ONNX
      ``NonMaxSuppression``; ``max_per_img`` proposals per image.
    * RoI features: :func:`roi_align_levels`.
    * Box head: softmax scores, per-class deltas decoded at the proposals
      and clipped, candidates above ``score_thr``, class-aware NMS (offset
      trick), ``max_per_img`` per image. With a mask head, NMS runs on
      boxes in input coordinates and they are rescaled after it, as mmdet
      does (without one, before it, also as mmdet does).
    * Mask head on the kept boxes (input coordinates), each detection's
      class channel, sigmoid.

    Pasting the masks into the original image (mmdet's
    ``_do_paste_mask``, then ``mask_thr_binary``) needs each image's size
    and runs outside the graph.

    Differences from mmdet: ONNX ``TopK`` and ``NonMaxSuppression`` may
    order equal scores differently from mmdet's sort and mmcv's NMS (seen
    with saturated objectness, many anchors at exactly 1.0); IoUs
    equal to the threshold up to rounding may be decided differently; mmcv
    runs NMS class by class instead of with offsets above 10,000
    candidates (the same boxes up to rounding). The torchvision RoIAlign
    used for PyTorch runs and ONNX's ``RoiAlign`` compute mmcv's
    ``RoIAlign`` up to float rounding.

    Args:
        model (nn.Module): An mmdet ``MaskRCNN`` / ``FasterRCNN`` in eval
            mode.
        input_shape (Sequence[int]): (H, W) of the exported input.
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int]) -> None:
        super().__init__()
        problem = _unsupported_part(model)
        if problem is not None:
            raise ValueError(f'{type(model).__name__}: end-to-end export '
                             f'needs {problem}')
        self.model = model
        rpn_cfg = model.rpn_head.test_cfg
        self.rpn_nms_pre = rpn_cfg.get('nms_pre', -1)
        self.rpn_max_per_img = int(rpn_cfg['max_per_img'])
        self.rpn_iou_thr = float(rpn_cfg['nms']['iou_threshold'])
        self.min_bbox_size = rpn_cfg.get('min_bbox_size', -1)
        rcnn_cfg = model.roi_head.test_cfg
        self.score_thr = float(rcnn_cfg['score_thr'])
        self.iou_thr = float(rcnn_cfg['nms']['iou_threshold'])
        self.max_per_img = int(rcnn_cfg['max_per_img'])
        self.with_masks = model.roi_head.with_mask
        if self.with_masks:
            self.onnx_metadata = {MASKS_PROP: ROI_MASKS}
        # The FPN's feature sizes at the export size give the anchors.
        training = model.training
        with torch.no_grad():
            feats = model.eval().extract_feat(torch.zeros(1, 3, *input_shape))
        model.train(training)
        anchors = model.rpn_head.prior_generator.grid_priors(
            [tuple(f.shape[-2:]) for f in feats], device='cpu')
        for i, a in enumerate(anchors):
            self.register_buffer(f'anchors{i}', a.clone(), False)

    def forward(self, x: Tensor, img_shape: Tensor,
                rescale: Tensor) -> Tuple[Tensor, ...]:
        feats = self.model.extract_feat(x)
        high = img_shape[:, [1, 0, 1, 0]].to(x.dtype)
        scale = rescale[:, [0, 1, 0, 1]]
        prop_index, proposals = self._proposals(feats, high)
        roi_head = self.model.roi_head
        bbox_head = roi_head.bbox_head
        cls_score, bbox_pred = bbox_head(
            roi_align_levels(roi_head.bbox_roi_extractor, feats, prop_index,
                             proposals))
        num_classes = bbox_head.num_classes
        scores = F.softmax(cls_score, dim=-1)[:, :num_classes]
        deltas = bbox_pred.reshape(bbox_pred.shape[0], -1, 4)
        boxes = delta2bbox(
            proposals.unsqueeze(1), deltas, bbox_head.bbox_coder,
            high[prop_index].unsqueeze(1))
        if not self.with_masks:  # mmdet rescales before NMS then
            boxes = boxes * scale[prop_index].unsqueeze(1)
        boxes = boxes.expand(-1, num_classes, -1).reshape(-1, 4)
        labels = torch.arange(num_classes).expand_as(scores).reshape(-1)
        scores = scores.reshape(-1)
        cand_index = prop_index.unsqueeze(1).expand(-1, num_classes)
        # One row per image; a candidate is valid in its own image's row.
        images = torch.arange(x.shape[0]).unsqueeze(1)
        valid = (cand_index.reshape(1, -1) == images) & (
            scores > self.score_thr)
        selected = batched_nms(
            boxes.expand(valid.shape[0], -1, -1), scores.expand_as(valid),
            labels.expand_as(valid), valid, self.max_per_img, self.iou_thr,
            self.score_thr)
        batch_index, keep = selected[:, 0], selected[:, 2]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if not self.with_masks:
            return batch_index, boxes, scores, labels
        masks = roi_head.mask_head(
            roi_align_levels(roi_head.mask_roi_extractor, feats, batch_index,
                             boxes))
        if not roi_head.mask_head.class_agnostic:
            index = labels.reshape(-1, 1, 1, 1).expand(-1, 1, *masks.shape[2:])
            masks = torch.gather(masks, 1, index)
        masks = masks[:, 0].sigmoid()
        boxes = boxes * scale[batch_index]
        return batch_index, boxes, scores, labels, masks

    def _proposals(self, feats: Sequence[Tensor],
                   high: Tensor) -> Tuple[Tensor, Tensor]:
        """RPNHead's ``predict``: the (P,) image index and (P, 4) boxes of
        the proposals of all images, each image's by descending score."""
        cls_scores, bbox_preds = self.model.rpn_head(feats)
        all_boxes: List[Tensor] = []
        all_scores: List[Tensor] = []
        all_levels: List[Tensor] = []
        for i, (cls_score,
                bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            anchors = getattr(self, f'anchors{i}')
            scores, deltas = flatten_level(cls_score, bbox_pred)
            if 0 < self.rpn_nms_pre < scores.shape[1]:
                scores, idxs = scores.topk(self.rpn_nms_pre, dim=1)
                deltas = gather_rows(deltas, idxs)
                anchors = anchors[idxs]
            all_boxes.append(
                delta2bbox(anchors, deltas, self.model.rpn_head.bbox_coder,
                           high.unsqueeze(1)))
            all_scores.append(scores)
            all_levels.append(torch.full_like(scores, i))
        boxes = torch.cat(all_boxes, dim=1)
        scores = torch.cat(all_scores, dim=1)
        valid = torch.ones_like(scores, dtype=torch.bool)
        if self.min_bbox_size >= 0:
            w = boxes[..., 2] - boxes[..., 0]
            h = boxes[..., 3] - boxes[..., 1]
            valid = (w > self.min_bbox_size) & (h > self.min_bbox_size)
        selected = batched_nms(boxes, scores, torch.cat(all_levels, dim=1),
                               valid, self.rpn_max_per_img, self.rpn_iou_thr)
        batch_index = selected[:, 0]
        return batch_index, boxes[batch_index, selected[:, 2]]
