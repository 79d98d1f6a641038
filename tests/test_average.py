"""humansplat.train.average, `humansplat average`: a model soup of checkpoints with one config."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from humansplat.cli import main
from humansplat.config import get_preset
from humansplat.errors import ConfigError
from humansplat.model import LatentReconstructionTransformer
from humansplat.train.average import average_checkpoints


def _model(path, seed, **overrides):
    torch.manual_seed(seed)
    LatentReconstructionTransformer(get_preset("micro", **overrides)).save_pretrained(path)
    return load_file(path / "model.safetensors")


def test_the_soup_is_the_weighted_mean_and_loads(tmp_path):
    a, b = _model(tmp_path / "a", 0), _model(tmp_path / "b", 1)
    (tmp_path / "a" / "pipeline.json").write_text('{"faithful": true}')
    out = average_checkpoints([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "ab",
                              weights=[3, 1])
    soup = load_file(out / "model.safetensors")
    assert soup.keys() == a.keys()
    changed = 0
    for k in a:
        want = (0.75 * a[k].double() + 0.25 * b[k].double()).to(a[k].dtype)
        torch.testing.assert_close(soup[k], want, rtol=0, atol=0, msg=k)
        changed += not torch.equal(a[k], b[k])
    assert changed > 10  # the two models really differ
    assert (out / "pipeline.json").read_text() == '{"faithful": true}'
    assert json.loads((out / "average.json").read_text())["weights"] == [0.75, 0.25]
    again = LatentReconstructionTransformer.from_pretrained(str(out))
    for k, v in again.state_dict().items():
        torch.testing.assert_close(v, soup[k], rtol=0, atol=0)


def test_the_cli_averages_equally_and_refuses_bad_input(tmp_path, capsys):
    a, b = _model(tmp_path / "a", 0), _model(tmp_path / "b", 1)
    assert main(["average", str(tmp_path / "a"), str(tmp_path / "b"), "-o",
                 str(tmp_path / "ab")]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == [0.5, 0.5]  # stdout: our JSON only
    soup = load_file(tmp_path / "ab" / "model.safetensors")
    k = next(iter(a))
    torch.testing.assert_close(soup[k], ((a[k].double() + b[k].double()) / 2).to(a[k].dtype))
    assert main(["average", str(tmp_path / "a"), "-o", str(tmp_path / "x")]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["average", str(tmp_path / "a"), str(tmp_path / "b"), "--weights", "1",
                 "-o", str(tmp_path / "x")]) == 2
    assert "one non-negative weight per checkpoint" in capsys.readouterr().err
    assert main(["average", str(tmp_path / "a"), str(tmp_path / "nowhere"), "-o",
                 str(tmp_path / "x")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    before = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert main(["average", str(tmp_path / "a"), str(tmp_path / "b"), "-o",
                 str(tmp_path / "a")]) == 2  # never over a source
    assert "is one of the checkpoints averaged" in capsys.readouterr().err
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == before
    assert not (tmp_path / "x").exists()


def test_checkpoints_of_other_architectures_are_refused(tmp_path):
    _model(tmp_path / "a", 0)
    _model(tmp_path / "b", 1, color_skip=True)
    with pytest.raises(ConfigError, match="color_skip"):
        average_checkpoints([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "ab")
