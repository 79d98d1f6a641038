"""Camera conventions, checked by projecting known points (humansplat/cameras.py: the contract)."""

import math

import pytest
import torch

from humansplat import cameras as cam

W = H = 256


def _uv(points, cams):
    uv, z = cam.project_points(torch.tensor(points, dtype=torch.float32), cams.viewmats, cams.Ks)
    return uv, z


def test_azimuth0_sees_front_from_plus_z():
    c = cam.orbit_cameras([0.0], 0.0, 3.0, width=W, height=H)
    assert torch.allclose(c.centers[0], torch.tensor([0.0, 0.0, 3.0]), atol=1e-5)
    # The person's nose (+z) is nearer than the back of the head (-z).
    _, z = _uv([[0, 1.6, 0.1], [0, 1.6, -0.1]], c)
    assert z[0, 0] < z[0, 1]
    # +y up in the world is up in the image (smaller v); the person's left hand (+x) is on
    # the image's right for a camera facing them.
    uv, _ = _uv([[0, 0.5, 0], [0, -0.5, 0], [0.3, 0, 0]], c)
    assert uv[0, 0, 1] < H / 2 < uv[0, 1, 1]
    assert uv[0, 2, 0] > W / 2


def test_azimuth90_sees_left_side_from_plus_x():
    c = cam.orbit_cameras([90.0], 0.0, 3.0, width=W, height=H)
    assert torch.allclose(c.centers[0], torch.tensor([3.0, 0.0, 0.0]), atol=1e-5)
    # The person's left side (+x) faces this camera: nearer than the right side.
    _, z = _uv([[0.2, 1.0, 0.0], [-0.2, 1.0, 0.0]], c)
    assert z[0, 0] < z[0, 1]
    # The person's front (+z) appears on the image's left... seen from +x looking at -x,
    # camera right is world -z, so +z projects to the left half.
    uv, _ = _uv([[0.0, 0.0, 0.3]], c)
    assert uv[0, 0, 0] < W / 2


@pytest.mark.parametrize("elev", [15.0, 30.0, 60.0])
def test_positive_elevation_looks_down(elev):
    c = cam.orbit_cameras([0.0], elev, 3.0, width=W, height=H)
    assert c.centers[0, 1] > 0
    R = c.viewmats[0, :3, :3]
    forward_world = R[2]  # third row of w2c = camera z axis in world
    assert forward_world[1] < 0
    assert math.isclose(math.degrees(math.asin(-forward_world[1].item())), elev, abs_tol=1e-3)


def test_orthogonal_views_and_ccw_azimuth():
    c = cam.orthogonal_views(radius=2.0, width=W, height=H)
    expected = torch.tensor([[0, 0, 2.0], [2.0, 0, 0], [0, 0, -2.0], [-2.0, 0, 0]])
    assert torch.allclose(c.centers, expected, atol=1e-5)
    assert c.azimuths.tolist() == [0.0, 90.0, 180.0, 270.0]
    # Counter-clockwise seen from above (+y): cross(p0, p1) points along +y.
    assert torch.linalg.cross(c.centers[0], c.centers[1], dim=0)[1] > 0


def test_origin_projects_to_image_centre_and_focal_from_fov():
    c = cam.orbit_cameras([0, 45, 200], [0, 10, -20], 2.5, fovy_deg=40.0, width=W, height=H)
    uv, z = _uv([[0, 0, 0]], c)
    assert torch.allclose(uv[:, 0], torch.tensor([W / 2, H / 2]), atol=1e-3)
    assert torch.allclose(z[:, 0], torch.full((3,), 2.5), atol=1e-5)
    # A point at the top edge of the fov lands on the image's top edge.
    half = 2.5 * math.tan(math.radians(20.0))
    uv, _ = _uv([[0, half, 0]], c[0])
    assert abs(uv[0, 0, 1].item()) < 1e-3


def test_viewmats_are_rigid_and_consistent_with_centres():
    c = cam.orbit_cameras(torch.linspace(0, 330, 12), 20.0, 2.0, target=(0.1, 0.9, -0.2))
    R = c.viewmats[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(12, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(12), atol=1e-5)
    d = (c.centers - torch.tensor([0.1, 0.9, -0.2])).norm(dim=-1)
    assert torch.allclose(d, torch.full((12,), 2.0), atol=1e-5)


def test_plucker_rays_pass_through_projected_points():
    c = cam.orbit_cameras([30.0, 250.0], [10.0, -5.0], 2.0, width=32, height=24)
    pl = cam.plucker_rays(c.viewmats, c.Ks, 32, 24)
    assert pl.shape == (2, 6, 24, 32)
    m, d = pl[:, :3], pl[:, 3:]
    assert torch.allclose(d.norm(dim=1), torch.ones(2, 24, 32), atol=1e-5)
    # A point X lies on a ray (m, d) iff X x d == m. Take the point seen at pixel (5, 7).
    o, dirs = cam.pixel_rays(c.viewmats, c.Ks, 32, 24)
    X = o[:, 7, 5] + 1.7 * dirs[:, 7, 5]
    assert torch.allclose(torch.linalg.cross(X, d[:, :, 7, 5], dim=-1), m[:, :, 7, 5], atol=1e-5)
    uv, _ = cam.project_points(X[:, None], c.viewmats, c.Ks)
    assert torch.allclose(uv[[0, 1], [0, 0]], torch.tensor([[5.5, 7.5], [5.5, 7.5]]), atol=1e-3)


def test_hierarchical_cycles_nest():
    cycles = cam.hierarchical_cycles(body_center=(0, 0, 0), body_height=1.7, n_views=36)
    assert [c.name for c in cycles] == ["full_body", "upper_body", "face"]
    radii = [c.radius for c in cycles]
    assert radii[0] > radii[1] > radii[2]
    cams = cycles[2].cameras(64, 64)
    assert len(cams) == 36
    uv, z = cam.project_points(torch.tensor([list(cycles[2].target)]), cams.viewmats, cams.Ks)
    assert torch.allclose(uv, torch.full_like(uv, 32.0), atol=1e-3)


@pytest.mark.parametrize("el,az,inp", [(0.0, 90.0, 0.0), (10.0, 0.0, 30.0), (-5.0, 350.0, 270.0)])
def test_sv3d_angle_round_trip(el, az, inp):
    polar, rel = cam.to_sv3d_angles(el, az, inp)
    assert math.isclose(polar.item(), 90.0 - el, abs_tol=1e-5)
    assert 0.0 <= rel.item() < 360.0
    el2, az2 = cam.from_sv3d_angles(polar, rel, inp)
    assert math.isclose(el2.item(), el, abs_tol=1e-4)
    assert math.isclose((az2.item() - az) % 360.0, 0.0, abs_tol=1e-3) or math.isclose(
        (az2.item() - az) % 360.0, 360.0, abs_tol=1e-3)


def test_bad_camera_shapes():
    with pytest.raises(ValueError, match="viewmats"):
        cam.Cameras(torch.eye(4), torch.eye(3)[None], 8, 8)
    with pytest.raises(ValueError, match="Ks"):
        cam.Cameras(torch.eye(4)[None], torch.eye(3)[None].repeat(2, 1, 1), 8, 8)
    with pytest.raises(ValueError, match="image size"):
        cam.Cameras(torch.eye(4)[None], torch.eye(3)[None], 0, 8)
