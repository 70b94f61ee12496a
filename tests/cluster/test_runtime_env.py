"""cluster/runtime_env.yaml: a valid Ray runtime env that keeps data and venvs out of the upload."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_runtime_env_parses_and_excludes_heavy_paths():
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    RuntimeEnv(**env, working_dir=str(REPO))  # Ray's own validation of the keys
    excludes = set(env["excludes"])
    for heavy in (".venv/", ".git/", "runs/"):
        assert heavy in excludes
    assert "working_dir" not in env, "the working dir comes from --working-dir"


def test_excludes_make_the_upload_small(tmp_path):
    """Ray's own packaging with these excludes leaves out a fake venv and run outputs."""
    # Ray's private packaging helpers: the same matcher `ray job submit` applies
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    root = tmp_path / "repo"
    for rel in ("lssed/a.py", "workflows/full.py", ".venv/lib/big.so", "runs/demo/x.parquet", ".git/HEAD"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    excl = _get_excludes(root, env["excludes"])
    seen: list[str] = []
    _dir_travel(root, [excl], lambda p: seen.append(p.relative_to(root).as_posix()) if p.is_file() else None,
                include_gitignore=False)
    assert sorted(seen) == ["lssed/a.py", "workflows/full.py"]
