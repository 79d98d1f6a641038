"""One call from a photo to a finished reconstruction: :class:`HumanSplatPipeline`.

    pipe = HumanSplatPipeline.from_pretrained()       # the bundled checkpoint, offline
    rec = pipe("photo.jpg", seed=0)                   # -> humansplat.reconstruction.Reconstruction
    rec.save("outputs/photo")                         # .ply .splat .mp4 .png .obj meta.json

The package, one idea a module:

- :mod:`.config`: ``pipeline.json`` (:class:`PipelineConfig`) and the device/precision rules;
- :mod:`.components`: the body models and view synthesizers a config names, registered by
  name (:func:`register_body_model`, :func:`register_synthesizer`);
- :mod:`.run`: :class:`HumanSplatPipeline`, loading and saving checkpoints and the staged run;
- :mod:`.card`: the model card written with a checkpoint; :mod:`.meta`: a run's meta.json.
"""

from .components import register_body_model, register_synthesizer  # noqa: F401
from .config import MODEL_FILES, PIPELINE_CONFIG_NAME, PipelineConfig  # noqa: F401
from .run import STAGES, HumanSplatPipeline, Prepared  # noqa: F401

__all__ = ["HumanSplatPipeline", "PipelineConfig", "Prepared", "PIPELINE_CONFIG_NAME",
           "MODEL_FILES", "STAGES", "register_body_model", "register_synthesizer"]
