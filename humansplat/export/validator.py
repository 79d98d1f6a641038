"""The Khronos glTF validator (npm package ``gltf-validator``), run through node.

Install: ``npm install --prefix ~/.cache/humansplat/gltf-validator gltf-validator`` (what
``scripts/setup.sh --test`` does when npm exists), or anywhere on ``NODE_PATH`` /
``$HUMANSPLAT_GLTF_VALIDATOR`` (the folder holding ``node_modules``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["validate_gltf", "validator_available", "validator_dir"]

_SCRIPT = r"""
const fs = require('fs');
const validator = require('gltf-validator');
const data = new Uint8Array(fs.readFileSync(process.argv[1]));
validator.validateBytes(data, {maxIssues: 200}).then(
  (report) => { process.stdout.write(JSON.stringify(report)); },
  (error) => { process.stderr.write(String(error)); process.exit(3); });
"""


def validator_dir() -> Path:
    """Where the validator's ``node_modules`` is looked for."""
    env = os.environ.get("HUMANSPLAT_GLTF_VALIDATOR")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "humansplat" / "gltf-validator"


def validator_available() -> str | None:
    """None when node and the validator are installed, else why not."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (validator_dir() / "node_modules" / "gltf-validator").is_dir():
        return (f"the npm package gltf-validator is not installed in {validator_dir()} "
                f"(npm install --prefix {validator_dir()} gltf-validator)")
    return None


def validate_gltf(path, timeout_s: float = 120.0) -> dict:
    """The validator's report (a dict: ``issues.numErrors``, ``issues.messages``, ``info``)
    for a .glb/.gltf file. Raises RuntimeError when the validator is missing or fails."""
    why = validator_available()
    if why is not None:
        raise RuntimeError(f"cannot validate glTF: {why}")
    env = {**os.environ, "NODE_PATH": str(validator_dir() / "node_modules")}
    proc = subprocess.run(["node", "-e", _SCRIPT, str(Path(path).resolve())], env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"gltf-validator failed on {path}: {proc.stderr.strip()[:500]}")
    return json.loads(proc.stdout)
