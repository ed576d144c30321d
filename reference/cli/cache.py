"""`ggufsm cache`: where the user's ggufsm cache is, what it holds, and clearing it.

The cache (spec/user_cache.py: `$GGUFSM_CACHE`, else `$XDG_CACHE_HOME/ggufsm`, else `~/.cache/ggufsm`) holds
two things: `models/`, the registered models pulled from PyPI with their sha256 stamps (`ggufsm models`), and
`spec/`, the lifecycle table's checked normal forms (spec/table_cache.py). Clearing the spec forms costs the next
process one full check of the table; clearing the models costs a download, so neither is the default: `clear`
names what it clears."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ggufsm.reference.model import registry
from ggufsm.spec import table_cache
from ggufsm.spec.user_cache import cache_root

PARTS = ("models", "spec")


def register(subparsers) -> None:
    parser = subparsers.add_parser("cache", help="where the model and spec caches are, their sizes, and clearing them")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run_show)
    commands = parser.add_subparsers(dest="cache_command", required=False, metavar="ACTION")
    clear = commands.add_parser("clear", help="remove the cached spec forms (rebuilt by the next load), the pulled "
                                              "models (pulled again when next used), or both")
    clear.add_argument("parts", nargs="+", choices=(*PARTS, "all"), metavar="PART",
                       help="spec, models or all")
    clear.set_defaults(handler=run_clear)


def folder_usage(folder: Path) -> dict:
    """Files and bytes under a folder (0 and 0 when it is missing); files that vanish meanwhile are skipped."""
    files = size = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            try:
                size += os.stat(os.path.join(parent, name)).st_size
            except OSError:
                continue
            files += 1
    return {"path": str(folder), "files": files, "bytes": size}


def run_show(args) -> int:
    root = cache_root()
    report = {"root": str(root), **{part: folder_usage(root / part) for part in PARTS}}
    report["models"]["cached"] = [entry.name for entry in registry.REGISTRY.values() if registry.model_path(entry).is_file()]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"ggufsm cache: {root}")
    for part in PARTS:
        usage = report[part]
        print(f"  {part + '/':<8} {usage['files']:5d} files  {usage['bytes'] / 1e6:9.1f} MB  {usage['path']}")
    cached = ", ".join(report["models"]["cached"]) or "none"
    print(f"  registered models cached: {cached}")
    print("  clear with `ggufsm cache clear spec|models|all`, or delete the folder")
    return 0


def run_clear(args) -> int:
    parts = set(PARTS) if "all" in args.parts else set(args.parts)
    if "spec" in parts:
        removed, freed = table_cache.clear()
        print(f"spec: removed {removed} cached forms ({freed / 1e6:.1f} MB) from {table_cache.cache_folder()}")
    if "models" in parts:
        removed = freed = 0
        for entry in registry.REGISTRY.values():
            for path in (registry.model_path(entry), registry.stamp_path(registry.model_path(entry))):
                try:
                    size = path.stat().st_size
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed += 1
                freed += size
        print(f"models: removed {removed} files ({freed / 1e6:.1f} MB) from {registry.models_dir()}")
    return 0
