"""Table 6 from transfer results: rows, intervals, the untrained note and the windows paragraph; results.json round trip."""

from __future__ import annotations

import json

from lssed.report.table6 import table6_transfer
from lssed.report.tables import to_csv
from lssed.storage import Storage
from lssed.transfer.stage import FeatureScores, TransferResults, load_transfer_results


def _scores(classifier: str, f1: float | None, mae: float | None) -> dict:
    metrics = {"f1_depressed": f1, "macro_f1": f1, "ua": f1, "mae": mae, "rmse": mae}
    ci = {"f1_depressed": (0.25, 0.9)} if f1 is not None else {"mae": (3.0, 6.5)}
    return {"classifier": classifier, "metrics": metrics, "ci": ci, "params": {}, "cv_score": 0.5, "cv_folds": 3,
            "n_train": 8, "n_dev": 4, "predictions": {}}


def results(name: str = "daicwoz-x") -> TransferResults:
    ser = FeatureScores("resnet18-run", "ser", "e/1", "resnet18", None, 512, 64.0, 32.0, False,
                        (_scores("logreg", 0.8, None), _scores("ridge", None, 4.5)))
    asr = FeatureScores("wav2vec2 WAV2VEC2_ASR_BASE_960H", "baseline", "e/2", "WAV2VEC2_ASR_BASE_960H", "12", 768,
                        25.0, 20.0, True, (_scores("logreg", 0.5, None),))
    return TransferResults(name, f"/x/transfer/{name}", "/x/features/abc", "daicwoz", "test", "depressed", 8, 4,
                           (ser, asr), {"cv_folds": 3, "bootstrap": 200, "seed": 0})


def test_table6_rows_notes_and_windows():
    t = table6_transfer([results()])
    assert t.columns == ("features", "classifier", "f1_depressed", "macro_f1", "ua", "mae", "rmse", "n_train", "n_dev",
                         "ci")
    assert t.cell({"features": "resnet18-run", "classifier": "logreg"}, "f1_depressed") == 0.8
    assert t.cell({"features": "resnet18-run", "classifier": "ridge"}, "ci") == "mae [3.00, 6.50]"
    assert t.cell({"features": "wav2vec2 WAV2VEC2_ASR_BASE_960H (untrained)", "classifier": "logreg"},
                  "ci") == "f1_depressed [0.25, 0.90]"
    notes = " ".join(t.notes)
    assert "(untrained)" in notes and "resnet18-run: log-mel STFT window 64 ms, hop 32 ms" in notes
    assert "receptive field of the convolutional front end 25 ms" in notes and "2.6x the ASR encoder's 25 ms" in notes
    assert "3-fold CV" in t.protocol and "4 dev participants" in t.protocol
    assert to_csv(t).splitlines()[0] == "features,classifier,f1_depressed,macro_f1,ua,mae,rmse,n_train,n_dev,ci"
    several = table6_transfer([results("a"), results("b")])
    assert {r[0] for r in several.rows} >= {"a: resnet18-run", "b: resnet18-run"}
    assert table6_transfer([]).notes and not table6_transfer([]).rows


def test_results_json_round_trip_and_unreadable_ones_are_listed(tmp_path):
    root = Storage(str(tmp_path))
    r = results()
    root.write_json(r.to_dict(), "transfer", r.name, "results.json")
    root.write_bytes(b"{not json", "transfer", "broken", "results.json")
    found, missing = load_transfer_results(root)
    assert len(found) == 1 and isinstance(found[0], TransferResults)
    assert json.loads(json.dumps(found[0].to_dict())) == json.loads(json.dumps(r.to_dict()))  # JSON: tuples as lists
    assert found[0].sets[1].untrained and found[0].results_uri == "/x/transfer/daicwoz-x/results.json"
    assert len(missing) == 1 and missing[0].startswith("transfer broken: results.json is unreadable")
    assert load_transfer_results(Storage(str(tmp_path / "nothing"))) == ([], [])
