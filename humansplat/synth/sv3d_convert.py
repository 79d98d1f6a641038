"""Key mapping between Stability's single-file SV3D checkpoint (``sv3d_p.safetensors``, the
``sgm`` naming of ``generative-models``) and the diffusers/transformers models we run.

The single file holds, under these prefixes (checked against sgm's ``VideoUNet``,
``VideoDecoder`` and ``GeneralConditioner`` code and the ``sv3d_p.yaml`` config):

- ``model.diffusion_model.*``: the spatio-temporal UNet -> ``UNetSpatioTemporalConditionModel``.
- ``first_stage_model.decoder.*``: the temporal VAE decoder -> ``AutoencoderKLTemporalDecoder``
  ``decoder.*``. (sv3d_p's first stage has no encoder: ``encoder_config`` is Identity.)
- ``conditioner.embedders.<k>.encoder.{encoder,quant_conv}.*``: the VAE encoder that encodes
  the input view for the concat condition (k = 1 in sv3d_p, 3 in SVD) -> the same
  ``AutoencoderKLTemporalDecoder``'s ``encoder.*``/``quant_conv.*``. When a file has
  ``first_stage_model.encoder.*`` (SVD) that one is used.
- ``conditioner.embedders.<k>.open_clip.model.visual.*``: OpenCLIP ViT-H/14 image tower ->
  transformers ``CLIPVisionModelWithProjection`` (``in_proj`` split into q/k/v, ``proj``
  transposed into ``visual_projection``).

Everything else (EMA copies, the conditioner's unused 2-D decoder, OpenCLIP text leftovers) is
reported in ``unused``. The mapping is a table of prefix rules built from the diffusers
configs, so it also works for small test configs, and it runs in both directions:
:func:`from_original` (file -> diffusers) and :func:`to_original` (diffusers -> file naming,
used by the tests to check that the mapping is a bijection onto the model's keys).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch
from torch import Tensor

__all__ = ["ConvertedSV3D", "from_original", "to_original", "unet_rules", "vae_rules",
           "clip_rules", "UNET_PREFIX", "VAE_DECODER_PREFIX"]

UNET_PREFIX = "model.diffusion_model."
VAE_DECODER_PREFIX = "first_stage_model.decoder."
_FIRST_STAGE_ENCODER = "first_stage_model.encoder."
_FIRST_STAGE_QUANT = "first_stage_model.quant_conv."
_COND_ENCODER_RE = re.compile(r"^(conditioner\.embedders\.\d+\.encoder\.)encoder\.")
_CLIP_RE = re.compile(r"^(conditioner\.embedders\.\d+\.open_clip\.model\.visual\.)")


@dataclass(frozen=True)
class Rule:
    """``orig`` prefix <-> ``new`` prefix; ``inner`` renames the remainder (first match wins,
    matched on whole dotted segments); ``kind`` marks tensors that change shape:
    "conv1x1" (sgm 1x1 conv [O,I,1,1] <-> linear [O,I]) or "transpose" ([I,O] <-> [O,I])."""

    orig: str
    new: str
    inner: tuple[tuple[str, str], ...] = ()
    kind: str | None = None


def _match(key: str, prefix: str) -> str | None:
    """The remainder of ``key`` after ``prefix`` ("" for an exact match), or None."""
    if key == prefix:
        return ""
    if key.startswith(prefix + "."):
        return key[len(prefix) + 1:]
    return None


def _rename(rest: str, pairs: Iterable[tuple[str, str]]) -> str:
    for a, b in pairs:
        r = _match(rest, a)
        if r is not None:
            return b if not r else f"{b}.{r}"
    return rest


def _join(prefix: str, rest: str) -> str:
    return prefix if not rest else f"{prefix}.{rest}"


class _Table:
    """Longest-prefix lookup over a rule list, in either direction."""

    def __init__(self, rules: list[Rule], reverse: bool = False):
        self.reverse = reverse
        self.rules = sorted(rules, key=lambda r: len(r.new if reverse else r.orig), reverse=True)

    def map(self, key: str, value: Tensor) -> tuple[str, Tensor] | None:
        for rule in self.rules:
            src, dst = (rule.new, rule.orig) if self.reverse else (rule.orig, rule.new)
            rest = _match(key, src)
            if rest is None:
                continue
            pairs = [(b, a) for a, b in rule.inner] if self.reverse else rule.inner
            new_key = _join(dst, _rename(rest, pairs))
            return new_key, _reshape(value, rule.kind, self.reverse, new_key)
        return None


def _reshape(value: Tensor, kind: str | None, reverse: bool, key: str) -> Tensor:
    if kind == "conv1x1" and key.endswith("weight"):
        if not reverse and value.ndim == 4:
            return value[:, :, 0, 0]
        if reverse and value.ndim == 2:
            return value[:, :, None, None]
    if kind == "transpose":
        return value.t().contiguous()
    return value


# --- the UNet --------------------------------------------------------------------------------

# sgm VideoResBlock = ResBlock + time_stack (temporal ResBlock) + time_mixer (AlphaBlender).
_UNET_RESNET = (
    ("time_stack.in_layers.0", "temporal_res_block.norm1"),
    ("time_stack.in_layers.2", "temporal_res_block.conv1"),
    ("time_stack.emb_layers.1", "temporal_res_block.time_emb_proj"),
    ("time_stack.out_layers.0", "temporal_res_block.norm2"),
    ("time_stack.out_layers.3", "temporal_res_block.conv2"),
    ("in_layers.0", "spatial_res_block.norm1"),
    ("in_layers.2", "spatial_res_block.conv1"),
    ("emb_layers.1", "spatial_res_block.time_emb_proj"),
    ("out_layers.0", "spatial_res_block.norm2"),
    ("out_layers.3", "spatial_res_block.conv2"),
    ("skip_connection", "spatial_res_block.conv_shortcut"),
)
# sgm SpatialVideoTransformer: spatial blocks keep their names; the temporal ones are renamed.
_UNET_ATTN = (
    ("time_stack", "temporal_transformer_blocks"),
    ("time_pos_embed.0", "time_pos_embed.linear_1"),
    ("time_pos_embed.2", "time_pos_embed.linear_2"),
)


def unet_rules(config: Mapping) -> list[Rule]:
    """Rules for a ``UNetSpatioTemporalConditionModel`` config (sgm ``VideoUNet`` naming:
    input_blocks are numbered continuously, 1 + (layers + 1) per level, the downsampler
    taking the last slot; output_blocks take layers + 1 per level, the upsampler sitting after
    the resnet (and the attention, when the level has one))."""
    n = len(config["block_out_channels"])
    L = int(config["layers_per_block"])
    down_attn = ["CrossAttn" in t for t in config["down_block_types"]]
    up_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    rules = [
        Rule("time_embed.0", "time_embedding.linear_1"),
        Rule("time_embed.2", "time_embedding.linear_2"),
        Rule("label_emb.0.0", "add_embedding.linear_1"),
        Rule("label_emb.0.2", "add_embedding.linear_2"),
        Rule("input_blocks.0.0", "conv_in"),
        Rule("out.0", "conv_norm_out"),
        Rule("out.2", "conv_out"),
        Rule("middle_block.0", "mid_block.resnets.0", _UNET_RESNET),
        Rule("middle_block.1", "mid_block.attentions.0", _UNET_ATTN),
        Rule("middle_block.2", "mid_block.resnets.1", _UNET_RESNET),
    ]
    i = 1
    for b in range(n):
        for j in range(L):
            rules.append(Rule(f"input_blocks.{i}.0", f"down_blocks.{b}.resnets.{j}", _UNET_RESNET))
            if down_attn[b]:
                rules.append(Rule(f"input_blocks.{i}.1", f"down_blocks.{b}.attentions.{j}",
                                  _UNET_ATTN))
            i += 1
        if b < n - 1:
            rules.append(Rule(f"input_blocks.{i}.0.op", f"down_blocks.{b}.downsamplers.0.conv"))
            i += 1
    i = 0
    for b in range(n):
        for j in range(L + 1):
            rules.append(Rule(f"output_blocks.{i}.0", f"up_blocks.{b}.resnets.{j}", _UNET_RESNET))
            if up_attn[b]:
                rules.append(Rule(f"output_blocks.{i}.1", f"up_blocks.{b}.attentions.{j}",
                                  _UNET_ATTN))
            if b < n - 1 and j == L:
                slot = 2 if up_attn[b] else 1
                rules.append(Rule(f"output_blocks.{i}.{slot}.conv",
                                  f"up_blocks.{b}.upsamplers.0.conv"))
            i += 1
    return rules


# --- the VAE (LDM encoder + sgm VideoDecoder) ------------------------------------------------

_VAE_RESNET = (("nin_shortcut", "conv_shortcut"),)
_VAE_ATTN = (("norm", "group_norm"), ("q", "to_q"), ("k", "to_k"), ("v", "to_v"),
             ("proj_out", "to_out.0"))
# sgm temporal_ae.VideoResBlock: ResnetBlock + time_stack (no time embedding) + mix_factor.
_VIDEO_RESNET = (
    ("time_stack.in_layers.0", "temporal_res_block.norm1"),
    ("time_stack.in_layers.2", "temporal_res_block.conv1"),
    ("time_stack.out_layers.0", "temporal_res_block.norm2"),
    ("time_stack.out_layers.3", "temporal_res_block.conv2"),
    ("mix_factor", "time_mixer.mix_factor"),
    ("nin_shortcut", "spatial_res_block.conv_shortcut"),
    ("norm1", "spatial_res_block.norm1"),
    ("conv1", "spatial_res_block.conv1"),
    ("norm2", "spatial_res_block.norm2"),
    ("conv2", "spatial_res_block.conv2"),
)


def vae_rules(config: Mapping) -> tuple[list[Rule], list[Rule]]:
    """(encoder rules, temporal-decoder rules) for an ``AutoencoderKLTemporalDecoder`` config;
    orig prefixes are relative to the encoder / decoder module, new ones to the diffusers
    model (``encoder.``/``decoder.``). diffusers lists the decoder levels top-down
    (``up_blocks.0`` = sgm ``up.{n-1}``)."""
    n = len(config["block_out_channels"])
    L = int(config["layers_per_block"])
    enc = [Rule("conv_in", "encoder.conv_in"), Rule("norm_out", "encoder.conv_norm_out"),
           Rule("conv_out", "encoder.conv_out"),
           Rule("mid.block_1", "encoder.mid_block.resnets.0", _VAE_RESNET),
           Rule("mid.attn_1", "encoder.mid_block.attentions.0", _VAE_ATTN, "conv1x1"),
           Rule("mid.block_2", "encoder.mid_block.resnets.1", _VAE_RESNET)]
    for i in range(n):
        for j in range(L):
            enc.append(Rule(f"down.{i}.block.{j}", f"encoder.down_blocks.{i}.resnets.{j}",
                            _VAE_RESNET))
        if i < n - 1:
            enc.append(Rule(f"down.{i}.downsample.conv",
                            f"encoder.down_blocks.{i}.downsamplers.0.conv"))
    dec = [Rule("conv_in", "decoder.conv_in"), Rule("norm_out", "decoder.conv_norm_out"),
           Rule("conv_out", "decoder.conv_out"),
           Rule("conv_out.time_mix_conv", "decoder.time_conv_out"),
           Rule("mid.attn_1", "decoder.mid_block.attentions.0", _VAE_ATTN, "conv1x1")]
    for j in range(L):  # the temporal mid block has layers_per_block resnets (2 = block_1, block_2)
        dec.append(Rule(f"mid.block_{j + 1}", f"decoder.mid_block.resnets.{j}", _VIDEO_RESNET))
    for i in range(n):
        k = n - 1 - i
        for j in range(L + 1):
            dec.append(Rule(f"up.{i}.block.{j}", f"decoder.up_blocks.{k}.resnets.{j}",
                            _VIDEO_RESNET))
        if i > 0:
            dec.append(Rule(f"up.{i}.upsample.conv", f"decoder.up_blocks.{k}.upsamplers.0.conv"))
    return enc, dec


# --- the CLIP image tower (OpenCLIP -> transformers) -----------------------------------------

def clip_rules(num_layers: int) -> list[Rule]:
    """Renames for OpenCLIP ``visual.*`` (without the prefix) -> ``CLIPVisionModelWithProjection``.
    ``attn.in_proj_*`` (fused q/k/v) is handled separately."""
    rules = [
        Rule("class_embedding", "vision_model.embeddings.class_embedding"),
        Rule("positional_embedding", "vision_model.embeddings.position_embedding.weight"),
        Rule("conv1", "vision_model.embeddings.patch_embedding"),
        Rule("ln_pre", "vision_model.pre_layrnorm"),
        Rule("ln_post", "vision_model.post_layernorm"),
        Rule("proj", "visual_projection.weight", kind="transpose"),
    ]
    for i in range(num_layers):
        o, n = f"transformer.resblocks.{i}", f"vision_model.encoder.layers.{i}"
        rules += [Rule(f"{o}.ln_1", f"{n}.layer_norm1"), Rule(f"{o}.ln_2", f"{n}.layer_norm2"),
                  Rule(f"{o}.attn.out_proj", f"{n}.self_attn.out_proj"),
                  Rule(f"{o}.mlp.c_fc", f"{n}.mlp.fc1"), Rule(f"{o}.mlp.c_proj", f"{n}.mlp.fc2")]
    return rules


_IN_PROJ_RE = re.compile(r"^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$")
_QKV_RE = re.compile(
    r"^vision_model\.encoder\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.(weight|bias)$")


# --- whole checkpoint ------------------------------------------------------------------------

@dataclass
class ConvertedSV3D:
    """State dicts ready for ``load_state_dict(strict=True)``, plus the keys left over."""

    unet: dict[str, Tensor] = field(default_factory=dict)
    vae: dict[str, Tensor] = field(default_factory=dict)
    image_encoder: dict[str, Tensor] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)


def _find_prefix(keys: Iterable[str], pattern: re.Pattern) -> str | None:
    found = {m.group(1) for k in keys if (m := pattern.match(k))}
    if len(found) > 1:
        raise ValueError(f"ambiguous checkpoint: several candidates {sorted(found)}")
    return found.pop() if found else None


def from_original(state_dict: Mapping[str, Tensor], *, unet_config: Mapping,
                  vae_config: Mapping, clip_num_layers: int) -> ConvertedSV3D:
    """Map an sgm-format SV3D/SVD state dict onto diffusers/transformers key names.

    Tensors are not copied (views where shapes change). Keys no rule claims go to ``unused``.
    """
    out = ConvertedSV3D()
    keys = list(state_dict)
    unet_t = _Table(unet_rules(unet_config))
    enc_rules, dec_rules = vae_rules(vae_config)
    enc_t, dec_t = _Table(enc_rules), _Table(dec_rules)
    clip_t = _Table(clip_rules(clip_num_layers))

    if any(k.startswith(_FIRST_STAGE_ENCODER) for k in keys):
        enc_prefix, quant_prefix = _FIRST_STAGE_ENCODER, _FIRST_STAGE_QUANT
    else:
        cond = _find_prefix(keys, _COND_ENCODER_RE)
        enc_prefix = cond + "encoder." if cond else None
        quant_prefix = cond + "quant_conv." if cond else None
    clip_prefix = _find_prefix(keys, _CLIP_RE)

    for k in keys:
        v = state_dict[k]
        mapped = None
        if k.startswith(UNET_PREFIX):
            mapped = unet_t.map(k[len(UNET_PREFIX):], v)
            target = out.unet
        elif k.startswith(VAE_DECODER_PREFIX):
            mapped = dec_t.map(k[len(VAE_DECODER_PREFIX):], v)
            target = out.vae
        elif enc_prefix and k.startswith(enc_prefix):
            mapped = enc_t.map(k[len(enc_prefix):], v)
            target = out.vae
        elif quant_prefix and k.startswith(quant_prefix):
            mapped = ("quant_conv." + k[len(quant_prefix):], v)
            target = out.vae
        elif clip_prefix and k.startswith(clip_prefix):
            rest = k[len(clip_prefix):]
            m = _IN_PROJ_RE.match(rest)
            if m:  # fused [3W, ...] -> q, k, v
                i, what = int(m.group(1)), m.group(2)
                layer = f"vision_model.encoder.layers.{i}.self_attn"
                for name, part in zip("qkv", v.chunk(3, dim=0)):
                    out.image_encoder[f"{layer}.{name}_proj.{what}"] = part
                continue
            mapped = clip_t.map(rest, v)
            target = out.image_encoder
        if mapped is None:
            out.unused.append(k)
            continue
        target[mapped[0]] = mapped[1]
    return out


def to_original(*, unet: Mapping[str, Tensor], vae: Mapping[str, Tensor],
                image_encoder: Mapping[str, Tensor], unet_config: Mapping, vae_config: Mapping,
                clip_num_layers: int, encoder_embedder: int = 1,
                clip_embedder: int = 0) -> dict[str, Tensor]:
    """The inverse of :func:`from_original`: diffusers/transformers state dicts -> sgm key
    names as laid out in ``sv3d_p.safetensors`` (VAE encoder under the conditioner embedder
    ``encoder_embedder``, CLIP under ``clip_embedder``). Raises KeyError for a key no rule
    covers, so a model the mapping does not fully describe cannot pass silently."""
    out: dict[str, Tensor] = {}
    unet_t = _Table(unet_rules(unet_config), reverse=True)
    enc_rules, dec_rules = vae_rules(vae_config)
    enc_t, dec_t = _Table(enc_rules, reverse=True), _Table(dec_rules, reverse=True)
    clip_t = _Table(clip_rules(clip_num_layers), reverse=True)
    enc_prefix = f"conditioner.embedders.{encoder_embedder}.encoder."
    clip_prefix = f"conditioner.embedders.{clip_embedder}.open_clip.model.visual."

    def put(prefix: str, table: _Table, k: str, v: Tensor) -> None:
        mapped = table.map(k, v)
        if mapped is None:
            raise KeyError(f"no sgm name for {k!r}")
        out[prefix + mapped[0]] = mapped[1]

    for k, v in unet.items():
        put(UNET_PREFIX, unet_t, k, v)
    for k, v in vae.items():
        if k.startswith("decoder."):
            put(VAE_DECODER_PREFIX, dec_t, k, v)
        elif k.startswith("encoder."):
            put(enc_prefix + "encoder.", enc_t, k, v)
        elif k.startswith("quant_conv."):
            out[enc_prefix + k] = v
        else:
            raise KeyError(f"no sgm name for VAE key {k!r}")
    fused: dict[tuple[int, str], dict[str, Tensor]] = {}
    for k, v in image_encoder.items():
        m = _QKV_RE.match(k)
        if m:
            fused.setdefault((int(m.group(1)), m.group(3)), {})[m.group(2)] = v
            continue
        put(clip_prefix, clip_t, k, v)
    for (i, what), parts in fused.items():
        out[f"{clip_prefix}transformer.resblocks.{i}.attn.in_proj_{what}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0)
    return out
