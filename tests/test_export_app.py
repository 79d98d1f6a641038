"""``/export`` of the web demo through its API (gradio_client), with the session rules of
``/animate``: nothing before a reconstruction, a bad pose refused before queueing, a valid GLB
of this session's result after one, and nothing for another session."""

from __future__ import annotations

from pathlib import Path

import pytest

from app_server import ROOT, app_server  # noqa: F401  (session fixture)

pytestmark = pytest.mark.timeout(600)


def test_export_endpoint(app_server, tmp_path):
    from gradio_client import Client, handle_file
    from pygltflib import GLTF2

    client = Client(app_server.url, verbose=False, download_files=str(tmp_path))
    other = Client(app_server.url, verbose=False, download_files=str(tmp_path / "other"))
    try:
        with pytest.raises(Exception, match="reconstruct a photo first"):
            client.predict("input", api_name="/export")
        with pytest.raises(Exception, match="pose must be one of"):
            client.predict("sideways", api_name="/export")
        client.predict(handle_file(str(ROOT / "examples" / "astronaut.jpg")),
                       api_name="/reconstruct")
        glb = Path(client.predict("tpose", api_name="/export"))
        assert glb.suffix == ".glb"
        gltf = GLTF2().load(str(glb))
        assert len(gltf.skins[0].joints) >= 20
        assert [a.name for a in gltf.animations] == ["walk", "wave", "turn"]
        from humansplat.export.validator import validate_gltf, validator_available

        if validator_available() is None:
            assert validate_gltf(glb)["issues"]["numErrors"] == 0
        with pytest.raises(Exception, match="reconstruct a photo first"):
            other.predict("input", api_name="/export")
    finally:
        client.close()
        other.close()
