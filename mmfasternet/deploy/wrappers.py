"""Modules that turn an OpenMMLab model into a graph worth exporting.

* :class:`FeatureWrapper`: backbone (+ neck) features of any detector or
  segmentor, or of a bare backbone.
* :class:`RTMDetEnd2End`: RTMDet from image to final detections, box
  decoding and NMS inside the graph (ONNX ``NonMaxSuppression``), with the
  same arithmetic as mmdet's ``predict`` so that both give the same boxes.
* :func:`batched_nms` and :func:`clip_boxes`: the steps it shares with
  :class:`~mmfasternet.deploy.mask_rcnn.MaskRCNNEnd2End`.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

RTMDET_HEADS = ('RTMDetHead', 'RTMDetSepBNHead', 'RTMDetInsHead',
                'RTMDetInsSepBNHead')


class FeatureWrapper(nn.Module):
    """Backbone plus neck (when the model has one) as a plain module.

    A two-stage detector's RPN head outputs follow the features (per level
    objectness logits, then box deltas): the part of Mask R-CNN that runs
    before proposals are decoded.

    Args:
        model (nn.Module): A detector or segmentor (anything with
            ``extract_feat``) or a bare backbone.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.with_rpn = getattr(model, 'rpn_head', None) is not None

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if hasattr(self.model, 'extract_feat'):
            feats = self.model.extract_feat(x)
        else:
            feats = self.model(x)
        if isinstance(feats, Tensor):
            feats = (feats, )
        feats = tuple(feats)
        if not self.with_rpn:
            return feats
        cls_scores, bbox_preds = self.model.rpn_head(feats)
        return feats + tuple(cls_scores) + tuple(bbox_preds)

    def output_names(self, num_outputs: int) -> List[str]:
        """feat{i}, then rpn_cls{i} and rpn_reg{i} for an RPN."""
        if not self.with_rpn:
            return [f'feat{i}' for i in range(num_outputs)]
        n = num_outputs // 3
        return [
            f'{kind}{i}' for kind in ('feat', 'rpn_cls', 'rpn_reg')
            for i in range(n)
        ]


class _NonMaxSuppression(torch.autograd.Function):
    """Single-class NMS per image that exports to ONNX NonMaxSuppression.

    ``boxes`` (B, N, 4) as x1, y1, x2, y2; ``scores`` (B, 1, N). Returns
    the selected (batch, class, box) triples, (M, 3) int64, each image's
    boxes in descending score order, as the ONNX operator does. A box is
    kept only when its score is strictly above ``score_thr``.
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_per_img: int,
                iou_thr: float, score_thr: float) -> Tensor:
        from torchvision.ops import nms
        selected = []
        for b in range(boxes.shape[0]):
            idxs = torch.nonzero(scores[b, 0] > score_thr).flatten()
            keep = nms(boxes[b, idxs], scores[b, 0, idxs], iou_thr)
            keep = idxs[keep[:max_per_img]]
            rows = torch.zeros((keep.numel(), 3), dtype=torch.int64)
            rows[:, 0] = b
            rows[:, 2] = keep
            selected.append(rows)
        return torch.cat(selected)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_img: int, iou_thr: float,
                 score_thr: float):
        max_out = g.op(
            'Constant', value_t=torch.tensor([max_per_img], dtype=torch.int64))
        iou = g.op('Constant', value_t=torch.tensor([iou_thr]))
        score = g.op('Constant', value_t=torch.tensor([score_thr]))
        return g.op(
            'NonMaxSuppression',
            boxes,
            scores,
            max_out,
            iou,
            score,
            center_point_box_i=0)


def flatten_level(cls_score: Tensor,
                  bbox_pred: Tensor) -> Tuple[Tensor, Tensor]:
    """One level's (B, A*K, H, W) logits and (B, A*4, H, W) regressions in
    mmdet's order (position, anchor, class): (B, H*W*A*K) sigmoid scores
    and (B, H*W*A, 4)."""
    batch = cls_score.shape[0]
    scores = cls_score.permute(0, 2, 3, 1).reshape(batch, -1).sigmoid()
    return scores, bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1, 4)


def gather_rows(rows: Tensor, idxs: Tensor) -> Tensor:
    """``rows`` (B, N, C) at ``idxs`` (B, K): (B, K, C)."""
    return torch.gather(rows, 1,
                        idxs.unsqueeze(-1).expand(-1, -1, rows.shape[2]))


def clip_boxes(boxes: Tensor, high: Tensor) -> Tensor:
    """Clamp x1, y1, x2, y2 to [0, ``high``] (``high`` broadcastable, as
    w, h, w, h), as mmdet's box decoders clip to ``img_shape``."""
    return torch.min(boxes.clamp(min=0), high)


def batched_nms(boxes: Tensor,
                scores: Tensor,
                idxs: Tensor,
                valid: Tensor,
                max_per_img: int,
                iou_thr: float,
                score_thr: float = -0.5) -> Tensor:
    """mmcv's ``batched_nms`` for each image, as one ONNX
    ``NonMaxSuppression``.

    Each image's boxes are shifted by ``idx * (max coordinate + 1)``, the
    largest coordinate taken over its valid boxes, as mmcv does, so that
    boxes of different ``idxs`` (classes, levels) never overlap.

    Args:
        boxes (Tensor): (B, N, 4) boxes, x1, y1, x2, y2.
        scores (Tensor): (B, N) scores.
        idxs (Tensor): (B, N) class (or level) of each box.
        valid (Tensor): (B, N) bool, the candidates (mmcv's input after
            its score and size filters); the others are never selected.
        max_per_img (int): Boxes kept per image.
        iou_thr (float): IoU above which the lower score is suppressed.
        score_thr (float): The operator's score threshold, above -1 (the
            score given to invalid candidates). Default: -0.5.

    Returns:
        Tensor: (M, 3) int64 (image, 0, box index), each image's boxes by
        descending score.
    """
    scores = torch.where(valid, scores, torch.full_like(scores, -1.0))
    masked = torch.where(valid.unsqueeze(-1), boxes, torch.zeros_like(boxes))
    max_coord = masked.reshape(boxes.shape[0], -1).max(dim=1, keepdim=True)[0]
    offsets = idxs.to(boxes.dtype) * (max_coord + 1)
    return _NonMaxSuppression.apply(boxes + offsets.unsqueeze(-1),
                                    scores.unsqueeze(1), max_per_img, iou_thr,
                                    score_thr)


class RTMDetEnd2End(nn.Module):
    """RTMDet (``RTMDetHead`` / ``RTMDetSepBNHead``) with decoding and NMS.

    The graph takes the preprocessed batch and, per image, the shape of the
    resized image inside the padded batch and the factors back to the
    original image, and returns the final detections of all images::

        inputs:  input (B, 3, H, W), img_shape (B, 2) as (h, w),
                 rescale (B, 2) as (1 / w_scale, 1 / h_scale)
        outputs: batch_index (M,), boxes (M, 4), scores (M,), labels (M,)
                 (RTMDet-Ins) masks (M, H, W): mask logits at input size


    It reproduces mmdet's ``_predict_by_feat_single`` and
    ``_bbox_post_process``: sigmoid scores, the ``nms_pre`` best (prior,
    class) pairs per level, distances decoded at the priors and clipped to
    ``img_shape``, boxes rescaled, degenerate boxes dropped
    (``min_bbox_size``), class-aware NMS with mmcv's coordinate offset
    trick, ``max_per_img`` kept. Priors are constants of the export size.
    For RTMDet-Ins, the kept instances' dynamic kernels run on the mask
    features (as batched matrix products: the per-instance 1x1 convs that
    mmdet runs as one grouped conv) and the logits are upsampled to the
    input size; resizing them to the original image and thresholding is
    left to the caller, whose image sizes vary
    (:class:`~mmfasternet.deploy.BackendDetector`).

    Args:
        model (nn.Module): An mmdet RTMDet detector.
        input_shape (Sequence[int]): (H, W) of the exported input.
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int]) -> None:
        super().__init__()
        head = model.bbox_head
        self.model = model
        cfg = head.test_cfg
        self.nms_pre = cfg.get('nms_pre', -1)
        self.score_thr = float(cfg.get('score_thr', 0.0))
        self.min_bbox_size = cfg.get('min_bbox_size', -1)
        self.iou_thr = float(cfg['nms']['iou_threshold'])
        self.max_per_img = int(cfg['max_per_img'])
        self.num_classes = head.cls_out_channels
        self.with_masks = hasattr(head, 'num_gen_params')
        sizes = [(input_shape[0] // s[1], input_shape[1] // s[0])
                 for s in head.prior_generator.strides]
        self.featmap_sizes = sizes
        priors = head.prior_generator.grid_priors(
            sizes, device='cpu', with_stride=True)
        for i, p in enumerate(priors):
            self.register_buffer(f'priors{i}', p.clone(), False)

    def forward(self, x: Tensor, img_shape: Tensor,
                rescale: Tensor) -> Tuple[Tensor, ...]:
        outs = self.model.bbox_head(self.model.extract_feat(x))
        cls_scores, bbox_preds = outs[:2]
        batch = x.shape[0]
        num_classes = self.num_classes
        all_scores, all_boxes, all_labels = [], [], []
        all_priors, all_kernels = [], []
        for i, (cls_score,
                bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            priors = getattr(self, f'priors{i}')
            scores, dist = flatten_level(cls_score, bbox_pred)
            h, w = self.featmap_sizes[i]
            k = h * w * num_classes
            if 0 < self.nms_pre < k:
                k = self.nms_pre
            scores, idxs = scores.topk(k, dim=1)
            prior_idxs = torch.div(idxs, num_classes, rounding_mode='floor')
            labels = idxs - prior_idxs * num_classes
            dist = gather_rows(dist, prior_idxs)
            level_priors = priors[prior_idxs]
            points = level_priors[..., :2]
            if self.with_masks:
                kernel = outs[2][i]
                kernel = kernel.permute(0, 2, 3,
                                        1).reshape(batch, -1, kernel.shape[1])
                all_kernels.append(gather_rows(kernel, prior_idxs))
                all_priors.append(level_priors)
            all_boxes.append(
                torch.cat([points - dist[..., :2], points + dist[..., 2:]],
                          dim=-1))
            all_scores.append(scores)
            all_labels.append(labels)
        boxes = torch.cat(all_boxes, dim=1)
        scores = torch.cat(all_scores, dim=1)
        labels = torch.cat(all_labels, dim=1)
        # Clip to each image's resized area, then back to its original size.
        boxes = clip_boxes(
            boxes, img_shape[:, [1, 0, 1, 0]].to(boxes.dtype).unsqueeze(1))
        boxes = boxes * rescale[:, [0, 1, 0, 1]].unsqueeze(1)
        valid = scores > self.score_thr
        if self.min_bbox_size >= 0:
            w = boxes[..., 2] - boxes[..., 0]
            h = boxes[..., 3] - boxes[..., 1]
            valid = valid & (w > self.min_bbox_size) & (h > self.min_bbox_size)
        selected = batched_nms(boxes, scores, labels, valid, self.max_per_img,
                               self.iou_thr, self.score_thr)
        batch_index, box_index = selected[:, 0], selected[:, 2]
        dets = (batch_index, boxes[batch_index, box_index],
                scores[batch_index, box_index], labels[batch_index, box_index])
        if not self.with_masks:
            return dets
        kernels = torch.cat(all_kernels, dim=1)[batch_index, box_index]
        priors = torch.cat(all_priors, dim=1)[batch_index, box_index]
        masks = self._mask_logits(outs[3][batch_index], kernels, priors)
        return dets + (masks, )

    def _mask_logits(self, mask_feat: Tensor, kernels: Tensor,
                     priors: Tensor) -> Tensor:
        """mmdet's ``_mask_predict_by_feat_single`` for (M,) instances,
        then the logits upsampled by the mask stride to the input size."""
        head = self.model.bbox_head
        num_inst = kernels.shape[0]
        h, w = mask_feat.shape[-2:]
        coord = head.prior_generator.single_level_grid_priors(
            (h, w), level_idx=0, device=mask_feat.device).reshape(1, -1, 2)
        points = priors[:, :2].reshape(-1, 1, 2)
        strides = priors[:, 2:].reshape(-1, 1, 2)
        relative = (points - coord).permute(0, 2, 1) / (
            strides[..., 0].reshape(-1, 1, 1) * 8)
        # Sizes spelled out, not -1: with no instance (an image where
        # nothing passes the threshold) a -1 next to a 0 is ambiguous.
        feat = torch.cat(
            [relative,
             mask_feat.reshape(num_inst, mask_feat.shape[1], h * w)],
            dim=1)
        n_layers = len(head.weight_nums)
        params = torch.split(
            kernels, list(head.weight_nums) + list(head.bias_nums), dim=1)
        for i in range(n_layers):
            out_channels = head.bias_nums[i]
            weight = params[i].reshape(num_inst, out_channels,
                                       head.weight_nums[i] // out_channels)
            bias = params[n_layers + i].reshape(num_inst, out_channels, 1)
            feat = torch.bmm(weight, feat) + bias
            if i < n_layers - 1:
                feat = feat.relu()
        # Instances as the batch dimension: interpolate accepts an empty
        # batch, not empty channels.
        logits = feat.reshape(num_inst, 1, h, w)
        stride = head.prior_generator.strides[0][0]
        logits = F.interpolate(logits, scale_factor=stride, mode='bilinear')
        return logits[:, 0]
