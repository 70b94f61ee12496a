"""Several corpora and cross-corpus evaluation in the workflow: config rules without Ray, the
demo corpus's other voices and noise, and (slow, Ray) workflows/configs/crosscorpus.yaml at
tiny settings producing a filled 2x2 Table 4."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from lssed.config import ConfigError, load_config
from lssed.validate import validate_config
from lssed.workflow import corpus_id, corpus_sections, for_corpus

REPO = Path(__file__).resolve().parents[2]
CROSS = REPO / "workflows" / "configs" / "crosscorpus.yaml"


def test_crosscorpus_config_lists_two_distinct_demo_corpora():
    cfg = validate_config(load_config(CROSS), "workflow")
    sections = corpus_sections(cfg)
    assert [corpus_id(c) for c in sections] == ["demo-a", "demo-b"] and cfg.crosscorpus
    b = for_corpus(cfg, sections[1])
    assert b.corpus.voice_offset == 6 and b.corpus.snr_db == (0.0, 10.0) and b.corpora == ()
    single = load_config(None, [])
    assert corpus_sections(single) == (single.corpus,)  # the single `corpus:` form still works


@pytest.mark.parametrize("overrides, fragment", [
    (["crosscorpus=true"], "at least two corpora"),
    (["corpora=[{name: demo}, {name: demo}]"], "distinct corpus id"),
    (["corpora=[{name: demo, id: a}, {name: demo, id: b, speakers: 1}]"], "corpora[1].speakers=1"),
    (["corpora=[{name: demo, id: a}, {name: demo, id: b, snr_db: [10, 0]}]"], "corpora[1].snr_db"),
    (["train.fold=-1"], "train.fold=-1"),
])
def test_corpora_rules_name_the_key(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(None, overrides), "workflow")
    assert fragment in str(err.value)


def test_demo_voice_offset_gives_other_speakers_and_noise(tmp_path):
    from lssed.corpora.demo import build_demo_corpus

    a = build_demo_corpus(tmp_path / "a", speakers=2, per_class=1, seed=0)
    b = build_demo_corpus(tmp_path / "b", speakers=2, per_class=1, seed=0, voice_offset=6, snr_db=(0.0, 0.0))

    def speakers(csv_path: Path) -> set[str]:
        with csv_path.open() as fh:
            return {row["speaker"] for row in csv.DictReader(fh)}

    assert speakers(a.csv) == {"spk01", "spk02"} and speakers(b.csv) == {"spk07", "spk08"}
    assert a.utterances == b.utterances
    with pytest.raises(ValueError, match="snr_db"):
        build_demo_corpus(tmp_path / "c", speakers=2, per_class=1, snr_db=(10.0, 0.0))


# --------------------------------------------------------------------------- Ray, slow


@pytest.mark.ray
@pytest.mark.slow
def test_crosscorpus_workflow_fills_a_2x2_table4(tmp_path, ray_session):
    from lssed.workflow import run_workflow

    cfg = load_config(CROSS, [f"storage.root={tmp_path / 'out'}", "train.epochs=1", "train.batch_size=8",
                              "preprocess.min_shards=2"])
    tiny = tuple(dataclasses.replace(c, speakers=3, per_class=2) for c in cfg.corpora)
    res = run_workflow(dataclasses.replace(cfg, corpora=tiny))
    assert res.ok, res.failures
    assert len(res.corpora) == 2 and len(res.feature_sets) == 2 and len(res.runs) == 2
    assert {r.train_corpus for r in res.runs} == {"demo-a", "demo-b"}
    assert res.crosscorpus is not None and len(res.crosscorpus.evaluations) == 2
    assert {(e.train_corpus, e.corpus) for e in res.crosscorpus.evaluations} == {("demo-a", "demo-b"),
                                                                                ("demo-b", "demo-a")}
    t4 = res.report.report.table("table4_cross_corpus")
    cells = {(r[0], r[1]) for r in t4.rows}
    assert cells == {("demo-a", "demo-a"), ("demo-a", "demo-b"), ("demo-b", "demo-a"), ("demo-b", "demo-b")}
    assert all(t4.cell({"train_corpus": a, "test_corpus": b}, "ua") is not None for a, b in cells)
    assert t4.cell({"train_corpus": "demo-a", "test_corpus": "demo-a"}, "ua_drop_pct") is None
    csv_path = Path(res.report.report.out_dir) / "tables" / "table4_cross_corpus.csv"
    header = csv_path.read_text().splitlines()[0]
    assert header.startswith("train_corpus,test_corpus,model,cell,wa,ua,n")
    # a rerun finds every evaluation committed
    again = run_workflow(dataclasses.replace(cfg, corpora=tiny))
    assert again.ok and sorted(again.crosscorpus.skipped) == sorted(
        f"{r.run_name}@{c}" for r in res.runs for c in ("demo-a", "demo-b") if c != r.train_corpus)
