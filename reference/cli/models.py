"""`ggufsm models pull|list|path`: the model cache from the command line."""

from __future__ import annotations

import json

from ggufsm.reference.model import registry as models


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="the model registry and cache (pull, list, path)")
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    pull = commands.add_parser("pull", help="download registered models into the cache and verify them")
    pull.add_argument("names", nargs="+", metavar="NAME", help=f"registered model ({', '.join(models.REGISTRY)})")
    pull.add_argument("--quiet", action="store_true", help="no progress output")
    pull.set_defaults(handler=run_pull)

    listing = commands.add_parser("list", help="registered models: cached or not, path, size")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(handler=run_list)

    path = commands.add_parser("path", help="print a cached model's path (fails when it is not cached)")
    path.add_argument("name", metavar="NAME", help=f"registered model ({', '.join(models.REGISTRY)})")
    path.set_defaults(handler=run_path)


def run_pull(args) -> int:
    for name in args.names:
        models.registry_entry(name)  # refuse an unknown name before downloading anything
    for name in args.names:
        path = models.pull(name, progress=not args.quiet)
        print(f"{name}: {path}")
    return 0


def run_list(args) -> int:
    rows = []
    for entry in models.REGISTRY.values():
        status = models.cache_status(entry)
        rows.append({"name": entry.name, "state": status.state, "path": str(status.path),
                     "size": entry.size, "sha256": entry.sha256, "summary": entry.summary})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        print(f"{row['name']:<{width}}  {row['state']:<8}  {row['size'] / 1e6:7.1f} MB  {row['path']}")
    return 0


def run_path(args) -> int:
    print(models.resolve(args.name))
    return 0
