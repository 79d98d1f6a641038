"""The latent reconstruction transformer: tokenizers, windowed attention, Gaussian head."""

from .gaussian_head import RAW_LAYOUT, GaussianHead, ReconstructionOutput
from .transformer import LatentReconstructionTransformer
from .window_attention import (WindowIndex, WindowStats, build_window_index, dense_window_mask,
                               windowed_attention)

__all__ = [
    "LatentReconstructionTransformer",
    "ReconstructionOutput",
    "GaussianHead",
    "RAW_LAYOUT",
    "WindowIndex",
    "WindowStats",
    "build_window_index",
    "windowed_attention",
    "dense_window_mask",
]
