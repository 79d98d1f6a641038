"""Small closed meshes the tests build."""

from __future__ import annotations

import math

import torch


def uv_sphere(radius: float, n_lat: int = 24, n_lon: int = 48):
    """A closed UV sphere at the origin: (vertices [N,3], faces [F,3])."""
    verts = [torch.tensor([0.0, radius, 0.0])]
    for i in range(1, n_lat):
        th = math.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * math.pi * j / n_lon
            verts.append(radius * torch.tensor([math.sin(th) * math.sin(ph), math.cos(th),
                                                math.sin(th) * math.cos(ph)]))
    verts.append(torch.tensor([0.0, -radius, 0.0]))
    faces = []
    ring = lambda i, j: 1 + (i - 1) * n_lon + j % n_lon  # noqa: E731
    for j in range(n_lon):
        faces.append([0, ring(1, j + 1), ring(1, j)])
        faces.append([len(verts) - 1, ring(n_lat - 1, j), ring(n_lat - 1, j + 1)])
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            faces += [[a, b, d], [a, d, c]]
    return torch.stack(verts), torch.tensor(faces)
