"""Binder: a fresh virtual environment built from exactly `binder/requirements.txt` and
`binder/postBuild` (run from the repository root, as Binder does) runs the quickstart.

The repository is copied as a clone would see it (tracked and unignored files only), so a file
missing from git or a dependency missing from binder/requirements.txt fails here. pip's usual
wheel cache makes the build quick after the first time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.notebooks.test_notebooks import check_quickstart, execute

ROOT = Path(__file__).resolve().parents[2]


def _clone_like_copy(dest: Path) -> None:
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def test_binder_files_name_the_runtime_dependencies() -> None:
    reqs = (ROOT / "binder" / "requirements.txt").read_text().lower()
    for name in ("pandas", "psutil", "ipywidgets", "orjson", "ipykernel", "matplotlib"):
        assert name in reqs, name
    assert "distributed" in reqs  # notebooks/dask.ipynb runs on Binder too
    for name in ("playwright", "pytest", "jupyterlab"):  # Binder brings its own Lab
        assert name not in reqs, name
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK) and "pip install --no-deps ." in post.read_text()


def test_the_notebook_extra_brings_what_the_quickstart_imports() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("matplotlib") for req in extras["notebook"])
    first = json.loads((ROOT / "notebooks" / "quickstart.ipynb").read_text())["cells"][0]
    assert 'pip install "ralphnb[notebook]"' in "".join(first["source"])


@pytest.mark.slow
def test_fresh_venv_from_binder_files_runs_the_quickstart(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _clone_like_copy(repo)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, symlinks=True)
    bindir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(env_dir))
    subprocess.run(
        [bindir / "python", "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"],
        cwd=repo,
        env=env,
        check=True,
        timeout=900,
    )
    subprocess.run(["bash", "binder/postBuild"], cwd=repo, env=env, check=True, timeout=600)
    probe = subprocess.run(
        [bindir / "python", "-c", "import ralphnb, ipywidgets; print(ralphnb.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    where = probe.stdout.strip()
    assert where.startswith(str(env_dir)), where  # installed into the venv, not the checkout
    # a kernelspec for that venv, found through JUPYTER_PATH by nbclient in this process
    subprocess.run(
        [
            bindir / "python",
            "-m",
            "ipykernel",
            "install",
            "--prefix",
            str(tmp_path / "kernels"),
            "--name",
            "binder-venv",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(tmp_path / "kernels" / "share" / "jupyter")
    try:
        work = tmp_path / "work"
        work.mkdir()
        nb = execute(repo / "notebooks" / "quickstart.ipynb", cwd=work, kernel_name="binder-venv")
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old
    check_quickstart(nb)
    assert sys.prefix != str(env_dir)
