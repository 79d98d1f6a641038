"""A binary glTF 2.0 (.glb) writer for the avatar: one skinned, textured mesh, its skeleton
and its animations, written with numpy only (the layout follows the glTF 2.0 specification;
the tests check every file with the Khronos validator and read it back with pygltflib and
trimesh).

Layout: joint nodes first (in the body model's order, children listed under their parent),
then the mesh node (skinned meshes ignore their node's transform). One buffer; each array in
its own 4-byte-aligned buffer view. The material is unlit (``KHR_materials_unlit``): the
texture already holds the colours the splat shows, lighting included, so viewers should
not shade it again (viewers without the extension fall back to a rough, non-metallic PBR
material with the same texture).
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np

from ..io.paths import as_path, atomic_path
from .asset import AvatarAsset
from .skin import local_trs

__all__ = ["glb_bytes", "write_glb"]

_FLOAT, _UBYTE, _USHORT, _UINT = 5126, 5121, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


class _Buffers:
    """The binary chunk: buffer views and accessors added one array at a time."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, raw: bytes, target: int | None = None) -> int:
        self.data.extend(b"\0" * (-len(self.data) % 4))
        v = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(raw)}
        if target is not None:
            v["target"] = target
        self.data.extend(raw)
        self.views.append(v)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, component: int, *,
                 target: int | None = None, bounds: bool = False) -> int:
        dtype = {_FLOAT: np.float32, _UBYTE: np.uint8, _USHORT: np.uint16,
                 _UINT: np.uint32}[component]
        a = np.ascontiguousarray(array, dtype=dtype).reshape(-1, _NCOMP[kind])
        acc = {"bufferView": self.view(a.tobytes(), target), "componentType": component,
               "count": int(a.shape[0]), "type": kind}
        if bounds:
            acc["min"] = a.min(0).tolist()
            acc["max"] = a.max(0).tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1


def _png(texture: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(texture, np.uint8)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def glb_bytes(asset: AvatarAsset) -> bytes:
    """The whole .glb file of ``asset`` as bytes."""
    buf = _Buffers()
    J = len(asset.joint_names)
    N = int(asset.positions.shape[0])
    pos = asset.positions.numpy().astype(np.float32)
    attrs = {"POSITION": buf.accessor(pos, "VEC3", _FLOAT, target=_ARRAY_BUFFER, bounds=True),
             "NORMAL": buf.accessor(asset.normals.numpy(), "VEC3", _FLOAT,
                                    target=_ARRAY_BUFFER),
             "TEXCOORD_0": buf.accessor(asset.uv.numpy(), "VEC2", _FLOAT,
                                        target=_ARRAY_BUFFER),
             "JOINTS_0": buf.accessor(asset.joints.numpy(), "VEC4",
                                      _UBYTE if J <= 256 else _USHORT, target=_ARRAY_BUFFER),
             "WEIGHTS_0": buf.accessor(asset.weights.numpy(), "VEC4", _FLOAT,
                                       target=_ARRAY_BUFFER)}
    indices = buf.accessor(asset.faces.numpy().reshape(-1), "SCALAR",
                           _USHORT if N <= 65535 else _UINT, target=_ELEMENT_ARRAY_BUFFER)
    image_view = buf.view(_png(asset.texture))
    ibm = np.linalg.inv(asset.bind_globals.double().numpy())  # [J,4,4]
    ibm_acc = buf.accessor(np.transpose(ibm, (0, 2, 1)), "MAT4", _FLOAT)  # column-major

    # joints: local TRS of the bind pose
    t, q, s = (x.numpy() for x in local_trs(asset.bind_globals, asset.joint_parents))
    nodes: list[dict] = []
    for j, name in enumerate(asset.joint_names):
        node = {"name": name, "translation": t[j].tolist(), "rotation": q[j].tolist()}
        if abs(float(s[j]) - 1.0) > 1e-6:
            node["scale"] = [float(s[j])] * 3
        kids = [c for c, p in enumerate(asset.joint_parents) if p == j]
        if kids:
            node["children"] = kids
        nodes.append(node)
    mesh_node = len(nodes)
    nodes.append({"name": asset.name, "mesh": 0, "skin": 0})
    roots = [j for j, p in enumerate(asset.joint_parents) if p < 0]

    animations = []
    for anim in asset.animations:
        times = buf.accessor(anim.times.numpy(), "SCALAR", _FLOAT, bounds=True)
        at, aq, as_ = local_trs(anim.globals, asset.joint_parents)  # [T,J,...]
        tracks = []  # (node, path, values, accessor type)
        for j in range(J):
            tracks.append((j, "translation", at[:, j].numpy(), "VEC3"))
            tracks.append((j, "rotation", aq[:, j].numpy(), "VEC4"))
            if j in roots or bool((as_[:, j] - 1).abs().max() > 1e-6):
                tracks.append((j, "scale", as_[:, j, None].expand(-1, 3).numpy(), "VEC3"))
        samplers = [{"input": times, "output": buf.accessor(values, kind, _FLOAT),
                     "interpolation": "LINEAR"} for _, _, values, kind in tracks]
        channels = [{"sampler": i, "target": {"node": node, "path": path}}
                    for i, (node, path, _, _) in enumerate(tracks)]
        animations.append({"name": anim.name, "samplers": samplers, "channels": channels})

    gltf = {
        "asset": {"version": "2.0", "generator": "humansplat export"},
        "extensionsUsed": ["KHR_materials_unlit"],
        "scene": 0,
        "scenes": [{"name": asset.name, "nodes": roots + [mesh_node]}],
        "nodes": nodes,
        "meshes": [{"name": asset.name, "primitives": [
            {"attributes": attrs, "indices": indices, "material": 0, "mode": 4}]}],
        "skins": [{"name": "skeleton", "joints": list(range(J)), "skeleton": roots[0],
                   "inverseBindMatrices": ibm_acc}],
        "materials": [{"name": "baked", "doubleSided": True,
                       "pbrMetallicRoughness": {"baseColorTexture": {"index": 0},
                                                "metallicFactor": 0.0,
                                                "roughnessFactor": 1.0},
                       "extensions": {"KHR_materials_unlit": {}}}],
        "textures": [{"sampler": 0, "source": 0}],
        "images": [{"name": "baked_colour", "bufferView": image_view,
                    "mimeType": "image/png"}],
        "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
        "accessors": buf.accessors,
        "bufferViews": buf.views,
        "buffers": [{"byteLength": len(buf.data)}],
    }
    if animations:
        gltf["animations"] = animations
    if asset.extras:
        gltf["asset"]["extras"] = asset.extras
    js = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 4)
    bin_ = bytes(buf.data) + b"\0" * (-len(buf.data) % 4)
    total = 12 + 8 + len(js) + 8 + len(bin_)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total),
                     struct.pack("<I4s", len(js), b"JSON"), js,
                     struct.pack("<I4s", len(bin_), b"BIN\0"), bin_])


def write_glb(asset: AvatarAsset, path) -> Path:
    """Write ``asset`` as a .glb at ``path`` (atomically). Returns the path."""
    p = as_path(path)
    data = glb_bytes(asset)
    with atomic_path(p) as tmp:
        Path(tmp).write_bytes(data)
    return p
