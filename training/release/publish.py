"""Upload an exported weight to the Hugging Face Hub.

``python -m training publish --name <name> [--repo-id ORG/NAME] [--dry-run] [--root DIR] [--out DIR]``

The upload folder is exactly ``weights/<name>/`` plus ``model_cards/<name>.md`` as
``README.md``. It is validated offline first (files present, sha256 equals the cfg's,
config.json parses, the safetensors file loads into ``otzoo.create_model``, the card's front
matter parses and carries the cfg's metrics); ``--dry-run`` stops there. Otherwise
``HfApi.create_repo(exist_ok=True)`` + ``HfApi.upload_folder`` (token from ``HF_TOKEN`` or
``huggingface-cli login``).
"""
import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from otzoo.models import sha256_file, weight_identity
from training.release.cards import parse_front_matter

REPO_ROOT = Path(__file__).resolve().parents[2]


class PublishError(RuntimeError):
    """The upload folder is incomplete or inconsistent with the weight's cfg."""


def load_cfg(name: str, root=REPO_ROOT) -> dict:
    path = Path(root) / "otzoo" / "pretrained" / f"{name}.json"
    if not path.is_file():
        raise PublishError(f"{path} does not exist: export the weight first (python -m training export --run ...)")
    return json.loads(path.read_text())


def stage(name: str, root=REPO_ROOT, out=None) -> Path:
    """Copy ``weights/<name>/*`` and the card (as README.md) into ``out`` (a new temp dir by default)."""
    root = Path(root)
    src, card = root / "weights" / name, root / "model_cards" / f"{name}.md"
    for path in (src, card):
        if not path.exists():
            raise PublishError(f"{path} does not exist: run `python -m training export` for {name} first")
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix=f"otzoo-publish-{name}-"))
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name != "README.md":
            shutil.copy2(f, out / f.name)
    shutil.copy2(card, out / "README.md")
    return out


def validate(folder, cfg: dict) -> list:
    """Check the staged folder against ``cfg``; returns the file names, raises PublishError."""
    folder = Path(folder)
    filename = cfg.get("filename", "model.safetensors")
    for f in (filename, "config.json", "README.md"):
        if not (folder / f).is_file():
            raise PublishError(f"upload folder is missing {f}")
    sha = sha256_file(folder / filename)
    if sha != cfg.get("sha256"):
        raise PublishError(f"{filename} has sha256 {sha}, the cfg says {cfg.get('sha256')}: re-run export")
    try:
        config = json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise PublishError(f"config.json does not parse: {err}") from err
    if config.get("architecture") != cfg.get("architecture") or config.get("num_classes") != cfg.get("num_classes"):
        raise PublishError("config.json's architecture/num_classes differ from the cfg: re-run export")
    from safetensors.torch import load_file

    import otzoo

    try:
        load_file(str(folder / filename))
        otzoo.create_model(cfg["architecture"], checkpoint_path=str(folder))
    except Exception as err:  # any failure to load is a broken upload
        raise PublishError(f"{filename} does not load into {cfg['architecture']}: {err}") from err
    try:
        meta = parse_front_matter((folder / "README.md").read_text())
    except Exception as err:
        raise PublishError(f"README.md front matter: {err}") from err
    for key in ("license", "library_name", "tags", "model-index"):
        if key not in meta:
            raise PublishError(f"README.md front matter lacks {key!r}")
    card_metrics = {m["name"]: m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    for key in ("linear_top1", "knn_top1"):
        if cfg["metrics"][key] not in card_metrics.values():
            raise PublishError(f"README.md model-index does not carry {key} = {cfg['metrics'][key]}")
    heads = cfg.get("heads") or {}
    path = folder / heads.get("filename", "")
    if heads and (not path.is_file() or sha256_file(path) != heads["sha256"]):
        raise PublishError(f"{heads['filename']} does not have the sha256 the cfg records: re-run export")
    for png in cfg.get("figures", []):
        if not (folder / png).is_file():
            raise PublishError(f"the card links {png}, which is not in the upload folder")
    return sorted(p.name for p in folder.iterdir())


def publish(name: str, repo_id=None, root=REPO_ROOT, dry_run: bool = False, force_repo_id: bool = False,
            private: bool = False, out=None) -> dict:
    """Stage, validate and (unless ``dry_run``) upload; returns a summary dict."""
    cfg = load_cfg(name, root)
    expected = cfg.get("hf_hub_id") or weight_identity(name, cfg["architecture"])["hf_hub_id"]
    repo_id = repo_id or expected
    if repo_id != expected and not force_repo_id:
        raise PublishError(f"--repo-id {repo_id} differs from the weight's hf_hub_id {expected}; pass "
                           "--force-repo-id to upload there anyway")
    folder = stage(name, root, out)
    files = validate(folder, cfg)
    summary = {"name": name, "repo_id": repo_id, "folder": str(folder), "files": files, "uploaded": False}
    if dry_run:
        return summary
    import huggingface_hub

    api = huggingface_hub.HfApi()
    api.create_repo(repo_id=repo_id, repo_type="model", exist_ok=True, private=private)
    commit = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                               commit_message=f"Upload {name} (otzoo {cfg.get('otzoo_version', '')})")
    summary.update(uploaded=True, commit=str(getattr(commit, "commit_url", commit)))
    return summary


def main(argv=None, prog: str = "python -m training publish", command: str = "publish") -> int:
    p = argparse.ArgumentParser(prog=prog, description="Upload weights/<name>/ + its model card (as README.md) "
                                "to the Hugging Face Hub; --dry-run builds and validates the folder offline.")
    p.add_argument("--name", required=True, help="exported weight name, e.g. gca_uot_resnet18_cifar10")
    p.add_argument("--repo-id", help="Hub repo (default: the cfg's hf_hub_id, otzoo/<name>)")
    p.add_argument("--force-repo-id", action="store_true", help="allow a --repo-id other than the cfg's")
    p.add_argument("--dry-run", action="store_true", help="build and validate the folder, upload nothing")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private")
    p.add_argument("--root", default=str(REPO_ROOT), help="repo root holding weights/, model_cards/, otzoo/pretrained/")
    p.add_argument("--out", help="staging folder (default: a new temp dir, kept)")
    args = p.parse_args(argv)
    try:
        s = publish(args.name, args.repo_id, args.root, args.dry_run, args.force_repo_id, args.private, args.out)
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    verb = "uploaded to" if s["uploaded"] else "dry run: validated, not uploaded to"
    print(f"{args.name}: {verb} https://huggingface.co/{s['repo_id']}\n  folder {s['folder']}: {', '.join(s['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
