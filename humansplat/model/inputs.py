"""The one place where a photo, its synthesized views and the fitted body become the model's
inputs. The pipeline (inference) and the training data (synthetic and scan subjects) both call
:func:`assemble_inputs`, so the bundled model sees at training time exactly what it sees in
the app.

    views[0]   = the input crop composited on the background, resized to ``image_size``
                 and encoded into the reconstruction space (identity in pixel space)
    views[1:]  = the view synthesizer's features (4 orthogonal views, azimuth 0/90/180/270)
    viewmats/Ks = the matching cameras, intrinsics for the ``image_size`` image
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..cameras import Cameras
from ..config import ModelConfig
from ..errors import ConfigError

__all__ = ["ModelInputs", "assemble_inputs"]


@dataclass
class ModelInputs:
    """A sample's (unbatched: [V,...], [L,3]) or a batch's ([B,V,...], [B,L,3]) model inputs."""

    views: Tensor  # [(B,)V,C,h,w]
    viewmats: Tensor  # [(B,)V,4,4]
    Ks: Tensor  # [(B,)V,3,3] for the config's image_size
    body_vertices: Tensor | None  # [(B,)L,3] world, or None without the human prior
    input_view: int = 0

    def as_kwargs(self) -> dict:
        """Keyword arguments of ``LatentReconstructionTransformer.forward`` (batched inputs)."""
        return dict(views=self.views, viewmats=self.viewmats, Ks=self.Ks,
                    body_vertices=self.body_vertices, input_view=self.input_view)

    def to(self, device) -> "ModelInputs":
        def mv(x):
            return None if x is None else x.to(device)
        return ModelInputs(mv(self.views), mv(self.viewmats), mv(self.Ks),
                           mv(self.body_vertices), self.input_view)

    def batched(self) -> "ModelInputs":
        """A batch of 1 from a sample."""
        def b(x):
            return None if x is None else x[None]
        return ModelInputs(b(self.views), b(self.viewmats), b(self.Ks), b(self.body_vertices),
                           self.input_view)


def assemble_inputs(config: ModelConfig, image: Tensor, mask: Tensor, input_camera: Cameras,
                    synth_features: Tensor, synth_cameras: Cameras,
                    body_vertices: Tensor | None, *, space=None,
                    background: float = 1.0) -> ModelInputs:
    """Build :class:`ModelInputs`.

    image [3,S,S] / mask [1,S,S] in [0,1]: the preprocessed crop and its foreground mask;
    input_camera: 1 camera for that S x S crop; synth_features [V-1,C,h,w] and synth_cameras
    (V-1 cameras, any resolution): the synthesizer's output; body_vertices [L,3] the fitted
    body; space: the reconstruction space encoding the input view (PixelSpace when None).
    """
    from ..latent_space import PixelSpace, resize_images

    cfg = config
    space = space if space is not None else PixelSpace()
    if image.ndim != 3 or image.shape[0] != 3 or mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"image must be [3,S,S] with a [1,S,S] mask, got "
                         f"{tuple(image.shape)} and {tuple(mask.shape)}")
    if len(input_camera) != 1:
        raise ValueError("input_camera must hold exactly one camera")
    n_gen = cfg.n_views - 1
    if synth_features.ndim != 4 or synth_features.shape[0] != n_gen:
        raise ConfigError(f"model preset {cfg.name!r} takes {n_gen} generated views, the "
                          f"synthesizer gave {tuple(synth_features.shape)}")
    if len(synth_cameras) != n_gen:
        raise ValueError(f"{len(synth_cameras)} synthesizer cameras for {n_gen} views")

    m = mask.float().clamp(0, 1)
    photo = image.float().clamp(0, 1) * m + background * (1 - m)
    photo = resize_images(photo[None], cfg.image_size, mode="bicubic").clamp(0, 1)
    first = space.encode(photo).float().cpu()  # [1,C,h,w]
    gen = synth_features.float().cpu()
    if gen.shape[-1] != cfg.feature_size:
        if cfg.space != "pixel":
            raise ConfigError(f"latent features are {gen.shape[-1]} px, the model expects "
                              f"{cfg.feature_size}: synthesize at the model's image_size")
        gen = resize_images(gen, cfg.feature_size).clamp(0, 1)
    views = torch.cat([first, gen], 0)
    if tuple(views.shape[1:]) != (cfg.in_channels, cfg.feature_size, cfg.feature_size):
        raise ConfigError(f"views are {tuple(views.shape[1:])}, model preset {cfg.name!r} "
                          f"expects {(cfg.in_channels, cfg.feature_size, cfg.feature_size)}")
    cams = Cameras.cat([input_camera.to("cpu", torch.float32).resized(cfg.image_size,
                                                                       cfg.image_size),
                        synth_cameras.to("cpu", torch.float32).resized(cfg.image_size,
                                                                        cfg.image_size)])
    body = None if body_vertices is None else body_vertices.detach().float().cpu()
    return ModelInputs(views=views, viewmats=cams.viewmats, Ks=cams.Ks, body_vertices=body,
                       input_view=0)
