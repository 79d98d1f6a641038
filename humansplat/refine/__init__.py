"""Faithful to the photo: Gaussians at the photo's resolution for the input view, coverage
from the person's mask, and a short test-time refinement against the photo.

- :mod:`.evidence`: the photo's crop, mask, camera and frame (:class:`PhotoEvidence`);
- :mod:`.depth`: edge-aware upsampling of the model's depth (joint bilateral, push-pull);
- :mod:`.input_view`: one Gaussian per crop pixel at a chosen resolution;
- :mod:`.coverage`: carving the other views by the photo's mask and frame (cut edges);
- :mod:`.test_time`: the refinement (torch rasterizer on CPU, gsplat on CUDA);
- :mod:`.faithful`: all of it on a model's output (:func:`make_faithful`).
"""

from .coverage import BEYOND_EDGE, carve_by_mask, opacity_beyond_frame, push_behind
from .evidence import PhotoEvidence, extend_to_cut_edge, frame_mask, upsample_mask
from .faithful import (FaithfulConfig, FaithfulResult, GeneratedViews, input_view_ids,
                       make_faithful, output_view_cameras)
from .test_time import RefineResult, refine_to_photo

__all__ = ["BEYOND_EDGE", "FaithfulConfig", "FaithfulResult", "GeneratedViews", "PhotoEvidence",
           "RefineResult", "carve_by_mask", "extend_to_cut_edge", "frame_mask",
           "input_view_ids", "make_faithful", "opacity_beyond_frame", "output_view_cameras",
           "push_behind", "refine_to_photo", "upsample_mask"]
