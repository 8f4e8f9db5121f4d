"""Hash what the same rns commands write on CamVid photos, to show a refactoring changed no output.

    python benchmarks/output_hashes.py REPO_DIR OUT_JSON      # run once on the commit before, once after

Runs, with REPO_DIR first on the path (tiny random model, CPU): add-support of 3 CamVid train images into a
fresh memory; segment of 3 test images with `--save all`, and again with `--no-background`; memory export.
Then writes a hash per output file. JSON files are hashed after dropping what changes from run to run
(timings, sizes of timing-bearing files, dates, mtimes, temporary paths); the lock file is skipped.
Two OUT_JSON files from a refactoring commit and its parent must be equal.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from shared_data import CAMVID  # noqa: E402  (one variable for every data benchmark: RNS_SHARED, else ../shared)

TINY = ["--model", "rns-tiny-test", "--pretrained", "random", "--device", "cpu"]
VOLATILE = {"timings", "seconds", "elapsed", "added_at", "date", "time", "started", "finished", "duration",
            "images_per_second", "memory", "out_dir", "path", "source", "mtime_ns", "wall_seconds", "pid",
            "hostname", "created", "updated", "bytes", "finished_at", "median_seconds"}


def run_commands(repo: Path, work: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1", "RNS_CACHE": str(work / "cache")}

    def rns(*args: str) -> None:
        result = subprocess.run([sys.executable, "-c", "from rns.cli import main; main()", *args], env=env,
                                cwd=work, capture_output=True, text=True)  # fmt: skip
        print(f"rns {args[0]}: exit {result.returncode} {result.stderr.strip()[-200:]}")

    for folder in ("imgs", "masks", "test"):
        (work / folder).mkdir()
    for image in sorted((CAMVID / "train" / "images").glob("*.jpg"))[:3]:
        shutil.copy(image, work / "imgs" / image.name)
        shutil.copy(CAMVID / "train" / "masks" / f"{image.stem}.png", work / "masks")
    for image in sorted((CAMVID / "test" / "images").glob("*.jpg"))[:3]:
        shutil.copy(image, work / "test" / image.name)
    rns("add-support", "--images", "imgs", "--masks", "masks", "--classes-file", str(CAMVID / "classes.txt"),
        "--memory", "mem.zarr", *TINY)
    rns("segment", "test", "--out", "out", "--memory", "mem.zarr", "--save", "all", "--quiet", *TINY)
    rns("segment", "test", "--out", "out_nobg", "--memory", "mem.zarr", "--no-background",
        "--save", "labels,probs", "--quiet", *TINY)
    rns("memory", "export", "export.npz", "--memory", "mem.zarr")


def stable(value: object, work: Path) -> object:
    """A JSON value without the keys that change from run to run."""
    if isinstance(value, dict):
        return {key: stable(item, work) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [stable(item, work) for item in value]
    if isinstance(value, str):
        return value.replace(str(work), "<work>")
    return value


def file_hash(path: Path, work: Path) -> str:
    if path.suffix == ".json":
        data = json.dumps(stable(json.loads(path.read_text()), work), sort_keys=True).encode()
    elif path.name == "export.npz":  # its meta_json holds dates; the arrays are the content
        arrays = np.load(path)
        data = b"".join(np.ascontiguousarray(arrays[k]).tobytes() for k in sorted(arrays.files)
                        if k != "meta_json")  # fmt: skip
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    repo, out_json = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    if not CAMVID.is_dir():
        print(f"cannot run: CamVid not found at {CAMVID}")
        return 2
    work = Path(tempfile.mkdtemp(prefix="rns-output-hashes-"))
    run_commands(repo, work)
    hashes = {
        str(path.relative_to(work)): file_hash(path, work)
        for path in sorted(work.rglob("*"))
        if path.is_file() and not {"cache", "mem.zarr"} & set(path.parts) and path.name != ".rns.lock"
    }
    out_json.write_text(json.dumps(hashes, indent=1, sort_keys=True))
    print(f"{len(hashes)} files hashed -> {out_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
