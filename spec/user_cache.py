"""The user's ggufsm cache folder, which the spec's verdict store (table_cache.py, ``spec/``) and the model
cache (reference/model/registry.py, ``models/``) share: ``$GGUFSM_CACHE`` when set, else
``$XDG_CACHE_HOME/ggufsm`` (the XDG base directory rule: only an absolute path counts), else
``~/.cache/ggufsm``. Read on each call, so a test or a user may change it at run time."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    override = os.environ.get("GGUFSM_CACHE")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "ggufsm"
    return Path.home() / ".cache" / "ggufsm"
