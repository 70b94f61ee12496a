"""The report from a fixed set of runs: exact tables, decodable PNGs, a self-contained HTML page,
partial results reported as missing, local and S3 storage, and the CLI."""

from __future__ import annotations

import math
import re

import matplotlib.image as mpimg
import pytest

from lssed.report.build import build_report
from lssed.report.tables import (Table, cross_corpus_table, display, model_table, to_markdown,
                                 window_table)
from lssed.storage import Storage

from .conftest import CLASSES, FEATURES_DIGEST, fixed_runs, write_runs

SQRT2_5 = 5 * math.sqrt(2)  # sample std of (50, 60)


def approx(v):
    return pytest.approx(v, abs=1e-9)


def test_model_table_means_and_stds():
    t = model_table(fixed_runs("mem://features"))
    key = {"corpus": "demo", "model": "resnet18", "window": 1024}
    assert t.cell(key, "n_seeds") == 2
    assert t.cell(key, "seeds") == "0 1"
    assert t.cell(key, "ua_mean") == approx(55.0)
    assert t.cell(key, "ua_std") == approx(SQRT2_5)
    assert t.cell(key, "wa_mean") == approx(57.0)
    assert t.cell(key, "wa_std") == approx(SQRT2_5)
    assert t.cell(key, "macro_f1_mean") == approx(53.0)
    assert t.cell(key, "val_ua_mean") == approx(56.0)
    assert t.cell(key, "val_ua_std") == approx(100 * math.sqrt(2) * 0.01)
    assert t.cell(key, "params") == 11_000_000
    assert t.cell(key, "train_seconds") == approx(15.0)
    # one seed: no std
    one = {"corpus": "demo", "model": "resnet18", "window": 400}
    assert t.cell(one, "ua_mean") == approx(45.0)
    assert t.cell(one, "ua_std") is None
    # the two vgg11 learning rates stay separate settings
    assert t.cell({"model": "vgg11", "lr": 0.01}, "ua_mean") == approx(40.0)
    assert t.cell({"model": "vgg11", "lr": 0.1}, "ua_mean") == approx(35.0)
    assert len(t.rows) == 5
    assert "seeds: 0, 1" in t.protocol and FEATURES_DIGEST in t.protocol and "corpora: demo, other" in t.protocol


def test_window_table_selects_on_validation():
    t = window_table(fixed_runs(""))
    assert t.columns == ("corpus", "window", "window_ms", "resnet18_mean", "resnet18_std", "vgg11_mean", "vgg11_std")
    assert t.cell({"corpus": "demo", "window": 400}, "window_ms") == 25.0
    assert t.cell({"corpus": "demo", "window": 400}, "resnet18_mean") == approx(45.0)
    assert t.cell({"corpus": "demo", "window": 400}, "vgg11_mean") is None
    assert t.cell({"corpus": "demo", "window": 1024}, "window_ms") == 64.0
    assert t.cell({"corpus": "demo", "window": 1024}, "resnet18_mean") == approx(55.0)
    assert t.cell({"corpus": "demo", "window": 1024}, "resnet18_std") == approx(SQRT2_5)
    # lr 0.1 wins on validation UA (31 > 30), so its test UA (35, not 40) is shown
    assert t.cell({"corpus": "demo", "window": 1024}, "vgg11_mean") == approx(35.0)
    assert t.cell({"corpus": "other", "window": 1024}, "resnet18_mean") == approx(70.0)
    headers, rows = display(t)
    assert headers == ("corpus", "window", "window_ms", "resnet18", "vgg11")
    assert ("demo", "1024", "64.00", "55.00 ± 7.07", "35.00") in rows


def test_cross_corpus_matrix_cells():
    t = cross_corpus_table(fixed_runs(""))
    assert t.columns == ("model", "train_on", "demo_mean", "demo_std", "other_mean", "other_std")
    r18_demo = {"model": "resnet18", "train_on": "demo"}
    assert t.cell(r18_demo, "demo_mean") == approx(45.0)  # w400 has the best validation UA
    assert t.cell(r18_demo, "other_mean") == approx(35.0)  # only w1024 was evaluated on 'other'
    assert t.cell(r18_demo, "other_std") == approx(SQRT2_5)
    r18_other = {"model": "resnet18", "train_on": "other"}
    assert t.cell(r18_other, "demo_mean") == approx(25.0)
    assert t.cell(r18_other, "other_mean") == approx(70.0)
    assert t.cell({"model": "vgg11", "train_on": "demo"}, "other_mean") is None
    assert not t.notes


def test_single_corpus_is_a_1x1_matrix_and_says_so():
    runs = [r for r in fixed_runs("") if r.train_corpus == "demo" and r.model == "vgg11"]
    t = cross_corpus_table(runs)
    assert t.columns == ("model", "train_on", "demo_mean", "demo_std")
    assert len(t.rows) == 1 and t.rows[0][2] == approx(35.0)
    assert any("1x1" in n for n in t.notes)


def test_markdown_has_protocol_and_merged_cells():
    md = to_markdown(model_table(fixed_runs("")))
    assert "*Protocol: corpora: demo, other" in md
    assert "| 55.00 ± 7.07 |" in md


def _check_html_self_contained(text: str) -> int:
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", text, flags=re.I)
    assert refs, "the page embeds no image"
    assert all(ref.startswith("data:image/png;base64,") for ref in refs), refs[:3]
    assert not re.search(r"<(?:link|script|iframe|object|embed)\b", text, flags=re.I)
    assert "url(" not in text and "@import" not in text
    return len(refs)


def test_build_report_local(runs_root, tmp_path):
    out = tmp_path / "report"
    report = build_report(runs_root.uri, out)
    assert report.runs == 6
    # partial results are reported, not fatal
    assert any(m.startswith("run still-running: no results.json") and "checkpoint_000000" in m for m in report.missing)
    assert any(m.startswith("run torn-json: results.json is unreadable") for m in report.missing)
    inventory = report.table("runs")
    assert set(inventory.column("status")) == {"complete", "incomplete"}
    assert inventory.column("predictions").count(2) == 6

    # the tables written are the ones computed
    assert report.table("models").cell({"corpus": "demo", "model": "resnet18", "window": 1024}, "ua_mean") == approx(55)
    csv_text = (out / "tables" / "models.csv").read_text()
    assert csv_text.splitlines()[0].startswith("corpus,model,window,hop,lr,crop_frames,n_seeds,seeds,folds,wa_mean")
    assert len(csv_text.splitlines()) == 1 + 5

    # dataset statistics from the shards' metadata and the marker
    labels = report.table("labels_by_split")
    assert labels.columns == ("label", "class4", "train", "val", "test", "total")
    assert labels.cell({"label": "excited"}, "class4") == "happy"
    assert labels.cell({"label": "excited"}, "test") == 1
    assert labels.cell({"label": "other"}, "class4") == "-"
    assert labels.cell({"label": "total"}, "total") == 6
    ages = report.table("age_by_gender")
    assert ages.cell({"age": "20-30"}, "F") == 2 and ages.cell({"age": "30-40"}, "M") == 2
    assert ages.cell({"age": "unknown"}, "total") == 2 and ages.cell({"age": "unknown"}, "speakers") == 1
    hours = report.table("hours")
    assert hours.cell({"split": "train"}, "hours") == approx(6.5 / 3600)
    assert hours.cell({"split": "test"}, "utterances") == 2
    assert any("rows_quarantined = 1" in n for n in hours.notes)
    assert "split: speaker" in hours.protocol

    # every PNG decodes; confusion matrices have one row/column per class and rows sum to 1
    assert report.pngs and all(p.exists() for p in report.pngs)
    for p in report.pngs:
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    confusions = [f for f in report.figures if f.kind == "confusion"]
    # 5 settings: test for all, test@other for r18 w1024, test@demo for r18 on other
    assert len(confusions) == 7
    for f in confusions:
        assert f.labels == CLASSES and len(f.data) == 4 and all(len(row) == 4 for row in f.data)
        for row in f.data:
            assert sum(row) == pytest.approx(1.0) or sum(row) == 0.0
    other = next(f for f in confusions if "other" in f.title and f.title.endswith("test (seeds 0)"))
    assert other.data[2] == (0.0, 0.0, 0.0, 0.0)  # no happy utterance in that test set
    assert other.data[3] == pytest.approx((0.2, 0.2, 0.2, 0.4))
    curves = [f for f in report.figures if f.kind == "curves"]
    assert {f.title for f in curves} == {"learning curves — resnet18", "learning curves — vgg11"}
    assert set(curves[0].data) == {"r18-other-s0", "r18-w1024-s0", "r18-w1024-s1", "r18-w400-s0"}

    text = report.index_html.read_text()
    assert _check_html_self_contained(text) == len(report.pngs)
    assert "Protocol: corpora: demo, other" in text and "still-running" in text
    md = report.report_md.read_text()
    assert "## Models (Table 5 analogue)" in md and "Missing or incomplete" in md


def test_report_accepts_runs_dir_and_rebuilds(runs_root, tmp_path):
    out = tmp_path / "r"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "stale.png").write_bytes(b"old")
    report = build_report(runs_root.join_uri("runs"), out)
    assert report.runs == 6
    assert not (out / "figures" / "stale.png").exists()


def test_empty_and_absent_storage(tmp_path):
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    report = build_report(str(tmp_path / "empty"), tmp_path / "out")
    assert report.runs == 0 and any("no runs under" in m for m in report.missing)
    assert report.table("models").rows == ()
    _ = report.index_html.read_text()
    with pytest.raises(FileNotFoundError, match="pass the storage root"):
        build_report(str(tmp_path / "nowhere"), tmp_path / "out2")


def test_report_from_s3(s3_endpoint, tmp_path):
    root = Storage("s3://lssed-test/report-test", endpoint_url=s3_endpoint)
    write_runs(root)
    from lssed.config import StorageConfig

    report = build_report(root.uri, tmp_path / "s3report", storage_cfg=StorageConfig(root=root.uri,
                                                                                     endpoint_url=s3_endpoint))
    assert report.runs == 6
    assert report.table("labels_by_split").cell({"label": "total"}, "total") == 6
    assert report.table("cross_corpus").cell({"model": "resnet18", "train_on": "other"}, "demo_mean") == approx(25)
    assert any(m.startswith("run still-running") for m in report.missing)
    assert "secret" not in report.index_html.read_text().lower()


def test_cli(runs_root, tmp_path, capsys):
    from lssed.cli import main

    rc = main(["report", runs_root.uri, "--out", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"report: {tmp_path / 'cli' / 'index.html'}" in out
    assert "missing (" in out and "torn-json" in out
    assert main(["report", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "x")]) == 2


def test_cli_defaults_to_storage_root_and_writes_beside_runs(runs_root, capsys):
    """No RUNS_URI and no --out: the runs of storage.root, the report in <storage.root>/report."""
    from lssed.cli import main

    assert main(["report", "--set", f"storage.root={runs_root.uri}"]) == 0
    assert f"report: {runs_root.root}/report/index.html" in capsys.readouterr().out
    assert runs_root.exists("report", "index.html") and runs_root.exists("report", "report.json")
    assert [p for p in runs_root.list("report", "tables") if p.endswith(".csv")]


def test_cli_publishes_to_s3(s3_endpoint, runs_root, capsys):
    """--out s3://...: built locally, every file uploaded under the destination."""
    from lssed.cli import main

    dest = Storage("s3://lssed-test/report-cli", endpoint_url=s3_endpoint)
    assert main(["report", runs_root.uri, "--out", dest.uri, "--set", f"storage.endpoint_url={s3_endpoint}"]) == 0
    assert "report: s3://lssed-test/report-cli/index.html" in capsys.readouterr().out
    assert dest.exists("index.html") and dest.exists("report.md") and dest.exists("report.json")
    assert [p for p in dest.list("tables") if p.endswith(".csv")] and [p for p in dest.list("figures")
                                                                       if p.endswith(".png")]


def test_table_cell_lookup_is_strict():
    t = Table("k", "t", ("a", "b"), ((1, 2), (1, 3)))
    with pytest.raises(KeyError):
        t.cell({"a": 1}, "b")
