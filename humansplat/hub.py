"""Where checkpoints come from and go to: local folders, the Hugging Face Hub and its cache.

One rule for every download: safetensors, JSON and text only (``ALLOW_PATTERNS``), never
pickle. A checkpoint that cannot be found raises :class:`MissingWeightsError` saying what was
missing, where we looked, and how to provide it.

Sources, in the order :func:`resolve_source` tries them:

- ``None``: ``$HUMANSPLAT_CHECKPOINT`` when set, else the bundled folder
  ``humansplat/checkpoints/humansplat-tiny/``: package data, so it is inside the installed
  package (editable or not, from any working directory) and always offline;
- an existing local folder;
- a Hub repo id ``owner/name``: :func:`huggingface_hub.snapshot_download` (with
  ``HF_HUB_OFFLINE=1`` or ``local_files_only=True`` only the local cache is read).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import MissingWeightsError

__all__ = ["ALLOW_PATTERNS", "BUNDLED_CHECKPOINT", "CHECKPOINT_ENV", "ResolvedSource",
           "resolve_source", "download", "upload_folder", "is_repo_id"]

#: files a checkpoint download may fetch: configs, model cards, safetensors weights
ALLOW_PATTERNS = ["*.json", "*.md", "*.txt", "*.safetensors", "*/*.json", "*/*.md",
                  "*/*.txt", "*/*.safetensors"]
#: the default checkpoint, shipped inside the package (pyproject's package-data)
BUNDLED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "humansplat-tiny"
#: environment variable naming the default checkpoint (folder or Hub repo id)
CHECKPOINT_ENV = "HUMANSPLAT_CHECKPOINT"

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_repo_id(s: str) -> bool:
    """Whether ``s`` reads as a Hub repo id (``owner/name``) rather than a path."""
    return bool(_REPO_ID.fullmatch(s)) and not s.startswith((".", "/", "~"))


@dataclass(frozen=True)
class ResolvedSource:
    """A checkpoint resolved to a local folder.

    path: the folder; id: what the user asked for (repo id or absolute folder);
    kind: "bundled" | "local" | "hub"; revision: the revision asked for (Hub);
    commit: the snapshot's commit hash (Hub), None for folders."""

    path: Path
    id: str
    kind: str
    revision: str | None = None
    commit: str | None = None

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "revision": self.revision,
                "commit": self.commit}


def _how_to_provide() -> str:
    return ("Provide a checkpoint with `HumanSplatPipeline.from_pretrained(FOLDER_OR_REPO_ID)` "
            f"or `humansplat reconstruct --checkpoint FOLDER_OR_REPO_ID`, set ${CHECKPOINT_ENV}, "
            "or fetch one on a machine with internet (`humansplat download --repo OWNER/NAME "
            "--local-dir DIR`) and pass DIR. `humansplat prior` needs no checkpoint.")


def resolve_source(source: str | os.PathLike | None = None, *, revision: str | None = None,
                   token: str | bool | None = None, local_files_only: bool | None = None,
                   allow_patterns: list[str] | None = None) -> ResolvedSource:
    """Turn a checkpoint source into a local folder (see the module docstring)."""
    if source is None:
        env = os.environ.get(CHECKPOINT_ENV)
        if env:
            resolved = resolve_source(env, revision=revision, token=token,
                                      local_files_only=local_files_only,
                                      allow_patterns=allow_patterns)
            return resolved
        if not BUNDLED_CHECKPOINT.is_dir():
            raise MissingWeightsError(
                f"the bundled checkpoint is missing: no folder {BUNDLED_CHECKPOINT} (it ships "
                "as package data of humansplat; this installation lacks it, e.g. a build "
                "that dropped package data). " + _how_to_provide())
        return ResolvedSource(BUNDLED_CHECKPOINT, str(BUNDLED_CHECKPOINT), "bundled")
    src = os.fspath(source)
    p = Path(src).expanduser()
    if p.is_dir():
        return ResolvedSource(p.resolve(), str(p.resolve()), "local")
    if p.exists():
        raise MissingWeightsError(f"checkpoint {src!r} is a file; pass the folder that holds "
                                  "pipeline.json (or config.json + model.safetensors)")
    if not is_repo_id(src):
        raise MissingWeightsError(f"checkpoint not found: {src!r} is neither a local folder "
                                  "nor a Hugging Face Hub repo id (owner/name). "
                                  + _how_to_provide())
    from huggingface_hub import snapshot_download

    kw = {"revision": revision, "token": token,
          "allow_patterns": allow_patterns or ALLOW_PATTERNS}
    if local_files_only is not None:
        kw["local_files_only"] = local_files_only
    try:
        folder = snapshot_download(src, **kw)
    except Exception as err:  # offline cache miss, gated/missing repo, bad revision, network
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        offline = (local_files_only or os.environ.get("HF_HUB_OFFLINE", "").lower()
                   in ("1", "true", "yes", "on"))
        where = (f"the Hugging Face cache ({_cache_dir()})" if offline else
                 f"the Hugging Face Hub and its cache ({_cache_dir()})")
        raise MissingWeightsError(
            f"checkpoint {src!r}{' @ ' + revision if revision else ''} could not be loaded "
            f"from {where}: {type(err).__name__}{': ' + first if first else ''}. "
            "For a gated or private repo, accept its terms and pass a token (`hf auth login` "
            "or token=...). " + _how_to_provide()) from err
    folder = Path(folder)
    return ResolvedSource(folder, src, "hub", revision, folder.name)


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def download(repo_id: str, *, revision: str | None = None, token: str | bool | None = None,
             local_dir: str | os.PathLike | None = None,
             local_files_only: bool | None = None) -> Path:
    """Fetch a checkpoint repo (safetensors/json/md only) into the HF cache, or into
    ``local_dir``; returns the folder."""
    if not is_repo_id(repo_id):
        raise ValueError(f"--repo must be a Hub repo id (owner/name), got {repo_id!r}")
    if local_dir is None:
        return resolve_source(repo_id, revision=revision, token=token,
                              local_files_only=local_files_only).path
    from huggingface_hub import snapshot_download

    kw = {"revision": revision, "token": token, "allow_patterns": ALLOW_PATTERNS,
          "local_dir": os.fspath(local_dir)}
    if local_files_only is not None:
        kw["local_files_only"] = local_files_only
    try:
        return Path(snapshot_download(repo_id, **kw))
    except Exception as err:
        raise MissingWeightsError(f"could not download {repo_id!r}: {type(err).__name__}: "
                                  f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                                  ) from err


def upload_folder(folder: str | os.PathLike, repo_id: str, *, token: str | bool | None = None,
                  private: bool | None = None, revision: str | None = None,
                  commit_message: str = "Upload HumanSplat pipeline"):
    """Create ``repo_id`` if needed and upload ``folder`` to it (``HfApi``); returns the
    commit info."""
    from huggingface_hub import HfApi

    if not is_repo_id(repo_id):
        raise ValueError(f"repo id must be owner/name, got {repo_id!r}")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=os.fspath(folder),
                             repo_type="model", revision=revision,
                             commit_message=commit_message)
