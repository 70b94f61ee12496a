"""lssed.workflow / `lssed run`: config validation before Ray, the run plan, and a tiny real
workflow that fails in training (the test SIGKILLs the Ray Train worker and no retries are
allowed), exits non-zero, and is then re-run: the committed corpus and features are skipped
and training resumes from its checkpoint."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from lssed.config import Config, ConfigError, load_config, replace_section
from lssed.validate import validate_config
from lssed.workflow_cli import DEMO_CONFIG, config_from_cli

REPO = Path(__file__).resolve().parents[2]


def _tiny(root: Path) -> list[str]:
    return [
        f"storage.root={root}", "corpus.speakers=4", "corpus.per_class=2", "preprocess.min_shards=4",
        "train.models=[crnn_attn]", "train.seeds=[0]", "train.epochs=2", "train.batch_size=8",
        "train.crop_frames=32", "tune.models=[crnn_attn]", "tune.windows=[400]", "tune.epochs=1",
        "tune.max_concurrent_trials=1",
    ]


# --------------------------------------------------------------------------- no Ray


def test_the_demo_config_is_the_default():
    args = argparse.Namespace(config=None, overrides=["train.epochs=1"], force=True, out="s3://b/wf")
    cfg = config_from_cli(args)
    demo = load_config(DEMO_CONFIG)
    assert cfg.corpus == demo.corpus and cfg.train.models == demo.train.models
    assert cfg.train.epochs == 1 and cfg.stages.force is True and cfg.storage.root == "s3://b/wf"
    assert demo.corpus.name == "demo" and demo.stages.tune and demo.train.epochs <= 15


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["train.models=[no_such_net]"], "unknown model"),
        (["tune.models=[no_such_net]"], "unknown model"),
        (["corpus.name=iemocap"], "corpus.root"),
        (["corpus.name=generic", "corpus.root=/no/such/corpus.csv"], "does not exist"),
        (["features.hop_length=2048"], "hop_length"),
        (["tune.windows=[0]"], "tune.windows"),
        (["train.models=[]"], "train.models=[]: is empty"),
        (["train.num_workers=0"], "train.num_workers=0"),  # the trainer's rule: no driver-only mode
        (["storage.root=gs://bucket/x"], "storage.root"),
        (["stages.parallel_runs=0"], "parallel_runs"),
    ],
)
def test_validation_lists_what_to_fix(overrides, fragment):
    with pytest.raises(ConfigError) as exc:
        validate_config(load_config(DEMO_CONFIG, overrides), "workflow")
    assert fragment in str(exc.value)


def test_validation_collects_every_problem_and_normalises_the_root(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as exc:
        validate_config(load_config(DEMO_CONFIG, ["train.models=[nope]", "features.hop_length=4096"]), "workflow")
    assert "unknown model" in str(exc.value) and "hop_length" in str(exc.value)
    monkeypatch.chdir(tmp_path)
    cfg = validate_config(load_config(DEMO_CONFIG, ["storage.root=rel/out"]), "workflow")
    assert cfg.storage.root == str(tmp_path / "rel" / "out")  # workers do not share our cwd
    s3 = validate_config(load_config(DEMO_CONFIG, ["storage.root=s3://b/p"]), "workflow")
    assert s3.storage.root == "s3://b/p"
    assert validate_config(replace_section(Config(), "stages", tune=False), "workflow").stages.tune is False


def test_the_run_plan_names_every_model_and_seed_stably():
    from lssed.train.runs import plan_runs

    cfg = load_config(DEMO_CONFIG, ["train.models=[resnet18,crnn_attn]", "train.seeds=[0,1]"])
    plan = plan_runs(cfg, "f" * 16)
    assert [(p.model, p.seed) for p in plan] == [("resnet18", 0), ("resnet18", 1), ("crnn_attn", 0), ("crnn_attn", 1)]
    assert len({p.run_name for p in plan}) == 4 and plan == plan_runs(cfg, "f" * 16)
    assert all(p.cfg.train.model == p.model and p.cfg.train.seed == p.seed for p in plan)
    assert all(p.run_name.startswith(p.model + "-ffffffff-") for p in plan)
    assert [p.run_name for p in plan_runs(replace_section(cfg, "train", run_name="mine"), "f" * 16)] == [
        "mine-resnet18-s0", "mine-resnet18-s1", "mine-crnn_attn-s0", "mine-crnn_attn-s1"]
    one = load_config(DEMO_CONFIG, ["train.models=[vgg11]", "train.seeds=[3]", "train.run_name=only"])
    assert [p.run_name for p in plan_runs(one, "f" * 16)] == ["only"]
    # settings that do not change what a run computes do not rename it (so a rerun resumes it)
    assert plan_runs(replace_section(cfg, "train", max_failures=0), "f" * 16) == [
        dataclasses.replace(p, cfg=replace_section(p.cfg, "train", max_failures=0)) for p in plan]


def test_full_py_rejects_a_bad_config_before_starting_ray():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(REPO / "workflows" / "full.py"), "--set", "train.epochs=many"],
                          capture_output=True, text=True, timeout=300, cwd="/")
    assert proc.returncode == 2
    assert "train.epochs" in proc.stderr and "starting Ray" not in proc.stderr and "Traceback" not in proc.stderr


def test_demo_corpus_goes_into_s3_storage_and_is_skipped_on_rerun(s3_endpoint):
    """With S3 storage the generated demo media are uploaded and the manifest points at them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lssed.corpora.stage import corpus_stage
    from lssed.storage import storage_from_config

    cfg = load_config(DEMO_CONFIG, ["storage.root=s3://lssed-test/wf-corpus", f"storage.endpoint_url={s3_endpoint}",
                                    "corpus.speakers=2", "corpus.per_class=1"])
    out = storage_from_config(cfg.storage)
    first = corpus_stage(cfg, out=out)
    assert not first.skipped and first.rows + first.rejected == first.input_rows > 0
    assert first.manifest_uri.startswith("s3://lssed-test/wf-corpus/corpus/")
    stage = storage_from_config(cfg.storage, first.uri)
    table = pq.read_table(pa.BufferReader(stage.read_bytes("manifest.parquet")))
    media = set(table.column("media_uri").to_pylist())
    assert media and all(m.startswith(first.uri + "/demo/") for m in media)
    for m in media:  # every object the manifest names was uploaded
        assert stage.exists(m.removeprefix(first.uri + "/"))
    assert stage.exists("_SUCCESS.json") and stage.exists("manifest.rejects.parquet")
    again = corpus_stage(cfg, out=out)
    assert again.skipped and again.manifest_uri == first.manifest_uri and again.rows == first.rows


# --------------------------------------------------------------------------- a real run


@pytest.mark.ray
@pytest.mark.slow
def test_failed_workflow_exits_nonzero_and_a_rerun_resumes(ray_session, s3_endpoint, tmp_path, capsys):
    from faults import checkpoint_written, kill_actor_when

    from lssed.cli import main

    root = tmp_path / "store"
    argv = ["run", "--out", str(root), *[a for kv in _tiny(root)[1:] for a in ("--set", kv)]]
    # 1st run: the test SIGKILLs the training worker once epoch 1's checkpoint is written, and
    # no retry is allowed.
    with kill_actor_when(checkpoint_written(root / "runs", epoch=1)) as killed:
        rc = main([*argv, "--set", "train.max_failures=0", "--set", "stages.tune=false"])
    assert killed, "the training worker was not killed"
    assert rc == 1
    first = json.loads((root / "workflow.json").read_text())
    assert not first["ok"] and [f["stage"] for f in first["failures"]] == ["train"]
    assert first["runs"] == [] and first["features_uri"]
    assert Path(first["report_uri"]).exists()  # the report is still built from what exists
    out = capsys.readouterr().out
    assert "FAILED train" in out

    # 2nd run (the same config, as a re-submitted job would): corpus and features are
    # committed and skipped, training resumes from its epoch-1 checkpoint, tune and report run.
    assert main(argv) == 0
    second = json.loads((root / "workflow.json").read_text())
    assert second["ok"], second["failures"]
    assert {"corpus", "preprocess"} <= set(second["skipped"])
    assert second["features_uri"] == first["features_uri"]
    (run_name,) = second["runs"]
    results = json.loads((root / "runs" / run_name / "results.json").read_text())
    assert results["epochs_completed"] == 2 and results["restarts"] >= 1  # resumed, not retrained
    manifest_rows = json.loads(next((root / "corpus").glob("*/_SUCCESS.json")).read_text())
    assert manifest_rows["rows"] + manifest_rows["rejected"] == manifest_rows["input_rows"] > 0
    assert (root / "report" / "index.html").exists()
    assert list((root / "tune").iterdir()), "the sweep wrote its experiment"
    out = capsys.readouterr().out
    assert f"report: {root / 'report' / 'index.html'}" in out

    # A third run finds everything committed: nothing is trained again.
    before = (root / "runs" / run_name / "results.json").read_bytes()
    assert main([*argv, "--set", "stages.tune=false"]) == 0
    third = json.loads((root / "workflow.json").read_text())
    assert f"train:{run_name}" in third["skipped"] and third["runs"] == [run_name]
    assert (root / "runs" / run_name / "results.json").read_bytes() == before

    # The report of S3 storage is built locally and uploaded next to the runs.
    from lssed.report.publish import publish_report
    from lssed.storage import storage_from_config

    s3cfg = load_config(DEMO_CONFIG, ["storage.root=s3://lssed-test/wf-report", f"storage.endpoint_url={s3_endpoint}"])
    s3 = storage_from_config(s3cfg.storage)
    for f in (root / "runs" / run_name).glob("*.*"):  # results.json, predictions.parquet, ...
        s3.write_bytes(f.read_bytes(), "runs", run_name, f.name)
    published = publish_report(s3.join_uri("runs"), s3.join_uri("report"), storage_cfg=s3cfg.storage)
    assert published.index_uri == "s3://lssed-test/wf-report/report/index.html" and s3.exists("report", "index.html")
    assert published.report.runs == 1
