"""``mova-bench weights list | fetch | verify | register | unregister``. Errors propagate to :func:`mova_bench.cli.main`,
which prints them with their fix (and as JSON with ``--json``); exit 2 for missing or failed
weights, 1 when ``verify`` finds a mismatch."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``weights`` (with ``list``, ``fetch``, ``verify``) to the CLI's subparsers."""
    p = subparsers.add_parser(
        "weights", help="pretrained weights: list, fetch (download + verify), verify",
        description="Weights live in $MOVA_BENCH_HOME/weights/<name>/ (default ~/.cache/mova-bench/weights). "
                    "Copies in the Hugging Face or torch hub caches are found and verified, not downloaded again. "
                    "MOVA_BENCH_OFFLINE=1 (or HF_HUB_OFFLINE=1) forbids any network access.")
    sub = p.add_subparsers(dest="weights_command", required=True, metavar="{list,fetch,verify,register,unregister}")
    ls = sub.add_parser("list", help="every registry entry: source, sha256, size, licence, present (and where)")
    ls.add_argument("--json", action="store_true", help="print one JSON list on stdout")
    f = sub.add_parser("fetch", help="download (resumable), verify size + hashes, move into place",
                       description="Download NAME (or every entry with 'all') into $MOVA_BENCH_HOME/weights, "
                                   "verifying size and hashes before the file is moved into place.")
    f.add_argument("name", metavar="NAME|all", help="a weights name (see `mova-bench weights list`) or 'all'")
    f.add_argument("--accept-license", action="store_true",
                   help="accept the licence of entries that require it (e.g. non-commercial ones); it is shown first")
    f.add_argument("--mirror", default=None, metavar="URL",
                   help="a base URL tried before the registry's sources, as URL/<filename> "
                        "(default: $MOVA_BENCH_WEIGHTS_MIRROR)")
    f.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    v = sub.add_parser("verify", help="re-hash present files; exit 1 when any mismatches")
    v.add_argument("name", nargs="?", default=None, metavar="NAME", help="one entry (default: all)")
    v.add_argument("--json", action="store_true", help="print one JSON list on stdout")
    r = sub.add_parser("register", help="use a file you already have (a copy, a fine-tune) as weights NAME",
                       description="Record PATH as weights NAME in the user weights registry "
                                   "($MOVA_BENCH_WEIGHTS_FILE, else $MOVA_BENCH_HOME/weights/registry.yaml) with its size "
                                   "and SHA-256 computed now, so every process (pool and Ray workers included) uses it "
                                   "and a changed file is refused. The file stays where it is.")
    r.add_argument("name", metavar="NAME", help="a weights name (see `mova-bench weights list`) or a new one")
    r.add_argument("path", metavar="PATH", help="the weights file")
    r.add_argument("--force", action="store_true", help="replace NAME's existing entry in the user registry")
    r.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    u = sub.add_parser("unregister", help="remove NAME from the user weights registry (the file is not touched)")
    u.add_argument("name", metavar="NAME")
    u.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def list_rows() -> list[dict[str, Any]]:
    """One row per entry for ``weights list``: what it is, where it comes from, whether it is here."""
    from mova_bench.weights.catalog import entries
    from mova_bench.weights.lookup import expected, locate, own_path

    rows = []
    for name, e in entries().items():
        exp = expected(e)
        loc = locate(e)
        if exp.origin == "pinned":
            status = f"pinned ({e.hash_status})"
        elif exp.origin == "recorded":
            status = "recorded on first download (none published upstream)"
        else:
            status = "none published: recorded on first download"
        rows.append({
            "name": name, "filename": e.filename, "description": e.description,
            "source": e.urls[0] if e.urls else None, "sources": e.urls,
            "sha256": exp.hashes.get("sha256"), "md5": e.md5, "git_blob_sha1": e.git_blob_sha1,
            "hash_status": status, "size": exp.size, "licence": e.licence,
            "needs_license_acceptance": e.needs_license_acceptance, "layout": e.layout,
            "present": loc.path is not None, "path": str(loc.path) if loc.path else None, "where": loc.where,
            "fetch_to": str(own_path(e)), "rejected": loc.rejected, "notes": loc.notes,
        })
    return rows


README_START, README_END = "<!-- weights-table:start (generated: mova_bench.weights.cli.markdown_table) -->", "<!-- weights-table:end -->"


def markdown_table() -> str:
    """The README's weights table, generated from the packaged registry (a test keeps them equal)."""
    from mova_bench.weights.catalog import PACKAGED_REGISTRY, _read_layer

    lines = ["| name | file | size (B) | hash | licence |", "|---|---|---|---|---|"]
    for name, e in sorted(_read_layer(PACKAGED_REGISTRY, "packaged weights registry").items()):
        if e.sha256:
            h = f"SHA-256 `{e.sha256[:12]}…` ({e.hash_note or e.hash_status})"
        elif e.md5:
            h = f"MD5 `{e.md5[:12]}…` ({e.hash_status})"
        else:
            h = "none published: recorded on first download"
        lic = e.licence + (" — needs `--accept-license`" if e.needs_license_acceptance else "")
        size = f"{e.size:,}" if e.size else "—"
        lines.append(f"| `{name}` | `{e.filename}` | {size} | {h} | {lic} |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.weights_command == "list":
        rows = list_rows()
        if args.json:
            print(json.dumps(rows, indent=2))
            return EXIT_OK
        from mova_bench.weights.catalog import weights_dir

        print(f"{'name':<26} {'present':<18} {'size':>15}  {'sha256':<30} licence")
        for r in rows:
            here = f"yes ({r['where']})" if r["present"] else "no"
            size = f"{r['size']:,}" if r["size"] else "?"
            sha = (r["sha256"][:12] + "…") if r["sha256"] else "—"
            if r["sha256"] and "recorded" in r["hash_status"]:
                sha += " (recorded)"
            elif not r["sha256"]:
                sha = "— (recorded on 1st download)" if not r["md5"] else f"md5 {r['md5'][:8]}…"
            lic = r["licence"] + ("  [needs --accept-license]" if r["needs_license_acceptance"] else "")
            print(f"{r['name']:<26} {here:<18} {size:>15}  {sha:<30} {lic}")
            for rej in r["rejected"]:
                print(f"{'':<26} rejected: {rej}")
        print(f"weights folder: {weights_dir()}", file=sys.stderr)
        return EXIT_OK
    if args.weights_command == "fetch":
        return _fetch(args)
    if args.weights_command == "verify":
        return _verify(args)
    if args.weights_command in ("register", "unregister"):
        from mova_bench.weights.catalog import register_user, unregister_user

        if args.weights_command == "register":
            entry, backup = register_user(args.name, args.path, force=args.force)
            out = {"status": "ok", "name": entry.name, "path": entry.path, "sha256": entry.sha256, "size": entry.size}
        else:
            backup = unregister_user(args.name)
            out = {"status": "ok", "name": args.name, "removed": True}
        from mova_bench.weights.catalog import user_registry_file

        out.update(registry=str(user_registry_file()), backup=str(backup) if backup else None)
        if args.json:
            print(json.dumps(out))
        else:
            what = (f"registered {out['name']}: {out['path']} ({out['size']:,} B, sha256 {out['sha256'][:12]}…)"
                    if args.weights_command == "register" else f"unregistered {args.name}")
            print(f"{what} in {out['registry']}" + (f" (previous file kept as {backup})" if backup else ""))
        return EXIT_OK
    return EXIT_USAGE  # pragma: no cover - argparse enforces the choices


def _fetch(args: argparse.Namespace) -> int:
    from mova_bench.errors import MovaBenchError
    from mova_bench.weights.catalog import entries, get_entry
    from mova_bench.weights.download import fetch

    if args.name != "all":
        get_entry(args.name)  # unknown name: error with "did you mean"
        path = fetch(args.name, accept_license=args.accept_license, mirror=args.mirror)
        print(json.dumps({"status": "ok", "name": args.name, "path": str(path)}) if args.json else str(path))
        return EXIT_OK
    done: dict[str, str] = {}
    failed: dict[str, MovaBenchError] = {}
    for name in entries():
        try:
            done[name] = str(fetch(name, accept_license=args.accept_license, mirror=args.mirror))
        except MovaBenchError as exc:
            failed[name] = exc
            print(f"{name}: {exc}", file=sys.stderr)
    if args.json:
        print(json.dumps({"status": "error" if failed else "ok", "exit_code": EXIT_USAGE if failed else EXIT_OK,
                          "paths": done, "errors": {n: {"error": Exception.__str__(e), "fix": e.fix} for n, e in failed.items()}}))
    else:
        for name, path in done.items():
            print(path)
    if failed:
        print(f"mova-bench: error: {len(failed)} of {len(done) + len(failed)} weights not fetched: {', '.join(failed)}",
              file=sys.stderr)
        for name, e in failed.items():
            if e.fix:
                print(f"  fix ({name}): {e.fix}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from mova_bench.weights.errors import MissingWeightsError
    from mova_bench.weights.lookup import verify

    rows = verify(args.name)
    if args.name is not None and all(r["status"] == "missing" for r in rows):
        raise MissingWeightsError(f"weights {args.name!r} are not present: nothing to verify ({rows[0]['expected']})",
                                  fix=f"mova-bench weights fetch {args.name}")
    bad = [r for r in rows if r["status"] == "mismatch"]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if r["status"] == "missing" and args.name is None:
                print(f"{'missing':<12} {r['name']}")
                continue
            extra = f": {r['problem']}" if r.get("problem") else ""
            print(f"{r['status']:<12} {r['name']}  {r['path']} ({r['where']}){extra}")
    if bad:
        print(f"mova-bench: {len(bad)} file(s) do not match their expected hash: "
              + ", ".join(f"{r['name']} ({r['path']})" for r in bad), file=sys.stderr)
        print("  fix: delete them and run `mova-bench weights fetch <name>` (files under $MOVA_BENCH_HOME/weights "
              "that fail are replaced by fetch)", file=sys.stderr)
        return EXIT_MISMATCH
    return EXIT_OK
