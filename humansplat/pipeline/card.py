"""The model card a pipeline writes with its checkpoint (``save_pretrained``, ``push``)."""

from __future__ import annotations

__all__ = ["model_card"]


def model_card(pipe) -> str:
    """A model card for ``pipe.save_pretrained``/``push``: Hub metadata, the components,
    usage, and the loaded checkpoint's own card (training, metrics, limitations)."""
    from ..config import ModelConfig

    c = pipe.config
    m = pipe.model.config if pipe.model is not None else None
    params = pipe.model.num_parameters() if pipe.model is not None else 0
    src = pipe.source.as_dict() if pipe.source is not None else {}
    lines = [
        "---",
        "library_name: humansplat",
        "license: mit",
        "pipeline_tag: image-to-3d",
        "tags:", "- gaussian-splatting", "- 3d-human", "- single-image-reconstruction",
        "- humansplat",
        "---", "",
        "# HumanSplat pipeline", "",
        "One photo of a person in, a 3D Gaussian splat of that person out: an open "
        "implementation of *HumanSplat: Generalizable Single-Image Human Gaussian Splatting "
        "with Structure Priors* (NeurIPS 2024, https://arxiv.org/abs/2406.12459).", "",
        "| stage | component |", "|---|---|",
        f"| body prior | {c.body_model}"
        + (f" ({c.body_model_source})" if c.body_model_source else "") + " |",
        f"| view synthesis | {c.view_synthesizer}"
        + (f" ({c.synthesizer_repo})" if c.synthesizer_repo else "") + " |",
        f"| reconstruction space | {c.space} |",
    ]
    if m is not None:
        assert isinstance(m, ModelConfig)
        lines.append(f"| reconstruction | LatentReconstructionTransformer, preset "
                     f"`{m.name}`, {params:,} parameters, {m.n_views} views of "
                     f"{m.image_size} px, {m.n_gaussians:,} Gaussians |")
    lines += ["", "Files: `pipeline.json` (the components), `config.json` + "
              "`model.safetensors` (the reconstruction transformer).", "",
              "## Use", "", "```python",
              "from humansplat import HumanSplatPipeline",
              "pipe = HumanSplatPipeline.from_pretrained(\"<this repo or folder>\")",
              "rec = pipe(\"photo.jpg\", seed=0)",
              "rec.save(\"outputs/photo\")  # gaussians.ply/.splat, orbit.mp4, meta.json ...",
              "```", "",
              "or `humansplat reconstruct photo.jpg -o outputs --checkpoint <repo or folder>`.",
              ""]
    if src:
        lines += [f"Saved from the {src.get('kind')} checkpoint `{src.get('id')}`"
                  + (f" at commit `{src['commit']}`" if src.get("commit") else "") + ".", ""]
    marker = "## From the source checkpoint's card"
    body = _card_body(pipe.source_card) if pipe.source_card else ""
    if marker in body:  # re-saving a saved pipeline: keep the original card once
        body = body[body.index(marker) + len(marker):]
    if body.strip():
        lines += [marker, "", body.strip(), ""]
    return "\n".join(lines)


def _card_body(card: str) -> str:
    """A model card without its YAML header."""
    text = card.lstrip()
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            text = text[end + 4:]
    return text.strip()
