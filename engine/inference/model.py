"""The built-in defect detector: a tiny anchor-free, CenterNet-style network.

The frame is letterboxed to 640x512 (half of the simulated camera's 1280x1024), then:

=========  ===============================================  ==========
stage      layers                                           stride
=========  ===============================================  ==========
stem       3x3 conv 3->16, 3x3 conv 16->32 (both stride 2)  4
mid        two residual depthwise-separable blocks, 32 ch   4
deep       3x3 conv 32->64 stride 2, two dilated residual   8
           depthwise-separable blocks, 64 ch
fuse       deep features upsampled x2 + 1x1 projection of   4
           the mid features, 48 ch (the last hidden layer)
head       1x1 convs: 3 class heat maps, 2 centre offsets,  4
           2 log box sizes
=========  ===============================================  ==========

One output cell covers 4x4 input pixels (8x8 pixels of a 1280x1024 frame). A
detection is a local maximum of a class heat map; its box is the cell plus the
offset, with the regressed width and height. The embedding is the global average
of the fused 48-channel map, the model's last hidden layer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

INPUT_W, INPUT_H = 640, 512
STRIDE = 4  # output cell size in input pixels
EMBED_DIM = 48


def _cbr(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class _SepBlock(nn.Module):
    """Residual depthwise 3x3 (optionally dilated) + pointwise 1x1."""

    def __init__(self, ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(ch, ch, 3, 1, dilation, dilation=dilation, groups=ch, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.pw = nn.Conv2d(ch, ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.dw(x)), inplace=True)
        return F.relu(x + self.bn2(self.pw(y)), inplace=True)


class TinyCenterNet(nn.Module):
    """Input: float RGB in [0, 1], NCHW. Output: heat-map logits, offsets, log sizes, embedding."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1))
        self.register_buffer("inv_std", torch.tensor([1 / 0.25, 1 / 0.25, 1 / 0.25]).view(1, 3, 1, 1))
        self.stem = nn.Sequential(_cbr(3, 16, 2), _cbr(16, 32, 2))
        self.mid = nn.Sequential(_SepBlock(32), _SepBlock(32))
        self.down = _cbr(32, 64, 2)
        self.deep = nn.Sequential(_SepBlock(64, 1), _SepBlock(64, 2), _SepBlock(64, 4))
        self.lateral = nn.Conv2d(32, EMBED_DIM, 1, bias=False)
        self.top = nn.Conv2d(64, EMBED_DIM, 1, bias=False)
        self.fuse = nn.Sequential(nn.BatchNorm2d(EMBED_DIM), nn.ReLU(inplace=True),
                                  nn.Conv2d(EMBED_DIM, EMBED_DIM, 3, 1, 1, groups=EMBED_DIM, bias=False),
                                  nn.Conv2d(EMBED_DIM, EMBED_DIM, 1, bias=False), nn.BatchNorm2d(EMBED_DIM),
                                  nn.ReLU(inplace=True))
        self.heat = nn.Conv2d(EMBED_DIM, num_classes, 1)
        self.box = nn.Conv2d(EMBED_DIM, 4, 1)  # dx, dy (cell fractions), log w, log h (in cells)
        nn.init.constant_(self.heat.bias, -4.6)  # a prior of 1 % objects per cell keeps early training stable

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = (x - self.mean) * self.inv_std
        m = self.mid(self.stem(x))
        d = self.deep(self.down(m))
        h = self.lateral(m) + F.interpolate(self.top(d), size=m.shape[-2:], mode="nearest")
        h = self.fuse(h)
        return self.heat(h), self.box(h), h.mean(dim=(2, 3))
