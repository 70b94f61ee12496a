"""Table 4 in long form (diagonal and off-diagonal cells, the relative drop) and folds in the
models table, from the fixed hand-built runs."""

from __future__ import annotations

import dataclasses

from pytest import approx

from lssed.report.build import build_report
from lssed.report.tables import model_table, table4

from .conftest import fixed_runs


def test_table4_cells_and_relative_drop_from_the_diagonal():
    t = table4(fixed_runs(""))
    assert t.columns == ("train_corpus", "test_corpus", "model", "cell", "wa", "ua", "n", "runs",
                         "wa_drop_pct", "ua_drop_pct")
    diag = {"train_corpus": "demo", "test_corpus": "demo", "model": "resnet18"}
    assert t.cell(diag, "cell") == "diagonal" and t.cell(diag, "ua") == approx(45.0)  # w400: best val UA
    assert t.cell(diag, "ua_drop_pct") is None
    off = {"train_corpus": "demo", "test_corpus": "other", "model": "resnet18"}
    assert t.cell(off, "cell") == "off-diagonal" and t.cell(off, "ua") == approx(35.0)  # mean of 30, 40
    assert t.cell(off, "runs") == 2 and t.cell(off, "n") == 40
    assert t.cell(off, "ua_drop_pct") == approx(100 * (45 - 35) / 45)
    back = {"train_corpus": "other", "test_corpus": "demo", "model": "resnet18"}
    assert t.cell(back, "ua_drop_pct") == approx(100 * (70 - 25) / 70)
    # vgg11 was never evaluated off its corpus: only its diagonal cell
    assert [r[:2] for r in t.rows if r[2] == "vgg11"] == [("demo", "demo")]
    assert not t.notes


def test_table4_without_other_corpora_says_how_to_fill_it():
    t = table4([r for r in fixed_runs("") if r.model == "vgg11"])
    assert all(r[3] == "diagonal" for r in t.rows) and any("crosscorpus" in n for n in t.notes)


def test_models_table_groups_folds_like_seeds():
    base = [r for r in fixed_runs("") if r.run_name == "r18-w400-s0"][0]
    folds = [dataclasses.replace(base, run_name=f"f{k}", train_config={**base.train_config, "fold": k},
                                 evaluations={"test": dataclasses.replace(base.evaluations["test"], ua=u)})
             for k, u in enumerate((0.4, 0.5, 0.6))]
    t = model_table(folds)
    (row,) = t.rows
    assert row[t.columns.index("folds")] == "0 1 2" and row[t.columns.index("n_seeds")] == 3
    assert row[t.columns.index("ua_mean")] == approx(50.0) and row[t.columns.index("ua_std")] == approx(10.0)


def test_report_writes_table4_csv(runs_root, tmp_path):
    rep = build_report(runs_root.uri, tmp_path / "rep")
    text = (tmp_path / "rep" / "tables" / "table4_cross_corpus.csv").read_text().splitlines()
    assert text[0].startswith("train_corpus,test_corpus,model,cell,wa,ua,n")
    assert len(text) - 1 == len(rep.table("table4_cross_corpus").rows) == 5  # 2x2 for resnet18 + vgg11 diagonal
