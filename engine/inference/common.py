"""Pieces every detector shares: letterboxing, class-wise NMS, box mapping, a cheap image embedding."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from engine.core.errors import StationError


class ModelError(StationError, ValueError):
    """A model file that cannot be used; the message is one sentence naming the file and the reason."""


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model's input: ``input = frame * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: int
    pad_y: int

    def to_frame(self, boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """Input-pixel boxes (N x 4, x0 y0 x1 y1) to frame pixels, clipped to the frame."""
        out = boxes.clone()
        out[:, 0::2] = (out[:, 0::2] - self.pad_x) / self.scale
        out[:, 1::2] = (out[:, 1::2] - self.pad_y) / self.scale
        out[:, 0::2] = out[:, 0::2].clamp(0, width - 1)
        out[:, 1::2] = out[:, 1::2].clamp(0, height - 1)
        return out


def letterbox(image: np.ndarray, width: int, height: int, pad_value: int = 114,
              interpolation: int | None = None) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` (H x W x 3 uint8) to fit ``width`` x ``height`` keeping its aspect, centred, padded.

    Downscaling uses area averaging unless ``interpolation`` says otherwise (thin defects survive it).
    """
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    if (nw, nh) != (w, h):
        interp = interpolation if interpolation is not None else (cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        image = cv2.resize(image, (nw, nh), interpolation=interp)
    px, py = (width - nw) // 2, (height - nh) // 2
    if (nw, nh) != (width, height):
        canvas = np.full((height, width, 3), pad_value, np.uint8)
        canvas[py:py + nh, px:px + nw] = image
        image = canvas
    return image, Letterbox(scale, px, py)


def to_tensor(images: list[np.ndarray], channels_last: bool = True) -> torch.Tensor:
    """Same-sized H x W x 3 uint8 images (RGB) to a float N x 3 x H x W batch in [0, 1]."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if channels_last:
        return batch.contiguous(memory_format=torch.channels_last)
    return batch.contiguous()


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of N x 4 and M x 4 boxes (x0 y0 x1 y1): an N x M matrix."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float = 0.45,
        max_det: int = 300) -> torch.Tensor:
    """Class-wise non-maximum suppression; returns the indices kept, best score first.

    Vectorised: boxes of different classes are moved apart by a per-class offset so that one
    IoU matrix serves all classes, and a box is dropped when a better-scored kept box overlaps it.
    The suppression is resolved exactly by iterating the "kept" mask to its fixed point, which
    takes as many matrix passes as the longest chain of overlaps (a handful in practice).
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    order = scores.argsort(descending=True)
    b = boxes[order].float()
    offset = classes[order].to(b.dtype)[:, None] * (b.max() - b.min() + 1.0)
    iou = box_iou(b + offset, b + offset)
    n = b.shape[0]
    # over[i, j]: j comes before i (higher score) and overlaps it too much.
    over = (iou > iou_threshold) & torch.ones(n, n, dtype=torch.bool).tril(diagonal=-1)
    keep = torch.ones(n, dtype=torch.bool)
    for _ in range(n):
        new = ~(over & keep[None, :]).any(dim=1)
        if torch.equal(new, keep):
            break
        keep = new
    return order[keep][:max_det]


def image_embedding(image_bgr: np.ndarray) -> np.ndarray:
    """A cheap image-level embedding for models that give none (32 values, not learned features).

    A 4 x 4 grid of mean luminance plus the mean and standard deviation of each BGR channel,
    plus ten luminance histogram bins, all scaled to about [0, 1]. It sees lighting and layout
    changes, not what a model has learned; say so wherever it is shown.
    """
    small = cv2.resize(image_bgr, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    luma = small @ np.array([0.114, 0.587, 0.299], np.float32)
    grid = luma.reshape(4, 16, 4, 16).mean(axis=(1, 3)).ravel()
    mean = small.reshape(-1, 3).mean(axis=0)
    std = small.reshape(-1, 3).std(axis=0)
    hist = np.histogram(luma, bins=10, range=(0.0, 1.0))[0].astype(np.float32) / luma.size
    return np.concatenate([grid, mean, std, hist]).astype(np.float32)
