"""Overlap-add of windowed frames: one implementation for offline decoding and for streams."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def overlap_add(frames: Tensor, hop: int) -> Tensor:
    """Windowed frames ``[B, N, L]`` → audio ``[B, (N − 1)·hop + L]``, frame ``k`` starting at ``k·hop``.

    Frames are summed as they are (the synthesis window is applied by the caller). A stream calls it on
    each block of new frames and adds the previous block's last ``L − hop`` samples (its tail).
    """
    b, n, length = frames.shape
    out_len = (n - 1) * hop + length
    return F.fold(frames.transpose(1, 2), output_size=(1, out_len), kernel_size=(1, length), stride=(1, hop)).reshape(
        b, out_len
    )


__all__ = ["overlap_add"]
