"""The rooms import downward only: import-linter's contracts in pyproject.toml hold."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "diffusion", "models", "corpora", "conditional_data", "training",
            "generation", "evaluation", "experiments", "bench", "tools")  # fmt: skip
SCRIPTS = ("main.py", "word_freq.py", "predict.py", "compute_elbo.py")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
               "lint_imports_command()"]  # fmt: skip
    return subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("models/config.py", "import training.trainer", "Packages import downward only"),
        ("corpora/toy.py", "import models", "Packages import downward only"),
        ("diffusion/spindle.py", "import common.errors", "The math (diffusion/) imports nothing"),
        ("evaluation/report.py", "import word_freq", "No package imports a script"),
        ("evaluation/stats.py", "import experiments", "No library room imports a study"),
    ],
)
def test_an_upward_import_breaks_a_contract(tmp_path, module, line, contract):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in (*SCRIPTS, "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    with (tmp_path / module).open("a") as file:
        file.write(f"\n{line}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout
