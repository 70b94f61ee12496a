"""The Ray-free parts of `lssed predict`'s pipeline: inputs, per-media work, batching, model files, CLI errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lssed.cli import main
from lssed.config import load_config
from lssed.errors import InputNotFoundError, UserError
from lssed.predict.inputs import MediaInput, expand_inputs
from lssed.predict.pipeline import MEDIA, WINDOW, predict_windows, prepare_media, result_rows, rows_table

EXTS = load_config(None).predict.extensions


def test_inputs_expand_folders_by_extension_and_merge_segment_csvs(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("in/a.wav", "in/sub/b.MP4", "in/.partial.wav", "in/notes.txt", "c.flac"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "segs.csv").write_text("path,start,end\nc.flac,1.0,2.5\nin/a.wav,0.5,1.0\nc.flac,0.0,0.5\n")
    items = expand_inputs([str(tmp_path / "in"), str(tmp_path / "segs.csv")], extensions=EXTS)
    assert items == [
        MediaInput(str(tmp_path / "c.flac"), ((0.0, 0.5), (1.0, 2.5))),
        MediaInput(str(tmp_path / "in" / "a.wav"), ((0.5, 1.0),)),
        MediaInput(str(tmp_path / "in" / "sub" / "b.MP4"), None),
    ]
    # --segments alone names its media; an explicit file is taken whatever its suffix
    only = expand_inputs([str(tmp_path / "in" / "notes.txt")], segments_csv=str(tmp_path / "segs.csv"), extensions=EXTS)
    assert [m.uri for m in only] == [str(tmp_path / p) for p in ("c.flac", "in/a.wav", "in/notes.txt")]


def test_inputs_missing_or_empty_are_usage_errors(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        expand_inputs([str(tmp_path / "nope.mp4")], extensions=EXTS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no media"):
        expand_inputs([str(tmp_path / "empty")], extensions=EXTS)


def test_prepare_media_quarantines_what_does_not_decode_and_keeps_the_rest(demo_corpus_csv, tmp_path):
    cfg = load_config(None)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    bad = prepare_media(MediaInput(str(junk)), cfg, cfg.predict, method="energy")
    assert not bad.ok and not bad.windows
    assert [(q["media"], q["stage"]) for q in bad.quarantine] == [(str(junk), "decode")]

    media = str(demo_corpus_csv.parent / "media" / "spk01_s03.wav")
    res = prepare_media(MediaInput(media, ((0.5, 1.5), (2.0, 2.3), (999.0, 1000.0))), cfg, cfg.predict, method="silero")
    assert res.ok
    assert [(w.start_s, w.end_s, w.flags) for w in res.windows] == [(0.5, 1.5, ()), (2.0, 2.3, ("short",))]
    assert [q["code"] for q in res.quarantine] == ["segment_past_end"] and "999.00" in res.quarantine[0]["reason"]
    n_mels = cfg.features.n_mels
    assert [m.shape for m in res.logmels] == [(n_mels, 1 + 16000 // 512), (n_mels, 1 + 4800 // 512)]
    rows = result_rows(res)
    assert [r["kind"] for r in rows] == [WINDOW, WINDOW, "quarantine", MEDIA]


def test_predict_windows_batches_equal_lengths_only():
    calls = []

    def fake(x: np.ndarray) -> np.ndarray:  # a "model" that reports each row's first value
        calls.append(x.shape)
        return np.stack([x[:, 0, 0, 0], -x[:, 0, 0, 0]], axis=1)

    rows = [{"kind": WINDOW, "media": "m", "start_s": float(i), "end_s": float(i + 1), "region": 0, "flags": "",
             "n_mels": 2, "n_frames": t, "logmel": np.full(2 * t, i, np.float32)}
            for i, t in enumerate([5, 3, 5, 5, 3])]
    rows.insert(2, {"kind": MEDIA, "media": "m", "ok": True, "duration_s": 9.0, "regions": "[]"})
    probs = predict_windows(fake, rows_table(rows), batch_size=2)
    assert sorted(calls) == sorted([(2, 1, 2, 5), (1, 1, 2, 5), (2, 1, 2, 3)])
    assert probs[2] is None
    assert [float(p[0]) for i, p in enumerate(probs) if i != 2] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_exported_files_are_told_from_state_dicts(tmp_path):
    import torch

    from lssed.predict.model import is_exported

    torch.save({"fc.weight": torch.zeros(4, 2)}, tmp_path / "state.pt")  # a zip, like a TorchScript file
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    assert not is_exported(tmp_path / "state.pt")
    assert is_exported(tmp_path / "m.onnx")


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    media = tmp_path / "a.wav"
    media.write_bytes(b"x")
    assert main(["predict", str(media), "--run", str(tmp_path)]) == 2  # no --out
    assert main(["predict", str(media), "--run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2  # not a run
    assert main(["predict", str(media), "--out", str(tmp_path / "o")]) == 2  # no model
    assert main(["predict", str(tmp_path / "missing.mp4"), "--checkpoint", str(tmp_path / "none.pt"),
                 "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(media), "--run", "r", "--checkpoint", "c", "--out", "o"])
    assert exc.value.code == 2
    assert not (tmp_path / "o").exists()


def test_an_imported_state_dict_runs_with_the_stated_classes_and_settings(tmp_path):
    import torch

    from lssed.models import create_model
    from lssed.predict.model import load_predictor, spec_from_file

    torch.manual_seed(0)
    torch.save(create_model("resnet18", num_classes=3).state_dict(), tmp_path / "state.pt")
    cfg = load_config(None, ["features.n_mels=64", "preprocess.denoise=none"])
    spec = spec_from_file(str(tmp_path / "state.pt"), cfg, class_names=("calm", "tense", "sad"))
    assert (spec.kind, spec.model, spec.class_names) == ("checkpoint", "resnet18", ("calm", "tense", "sad"))
    chain = spec.chain_config()
    assert (chain.features.n_mels, chain.preprocess.denoise, spec.settings_from) == (64, "none", "user")
    probs = load_predictor(spec)(np.zeros((2, 1, 64, 40), np.float32))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(UserError, match="names 2 classes"):
        spec_from_file(str(tmp_path / "state.pt"), cfg, class_names=("a", "b"))


def test_a_model_file_travels_with_the_spec_so_actors_need_no_copy_of_the_drivers_disk(tmp_path):
    import shutil

    import torch

    from lssed.models import create_model
    from lssed.predict.model import load_predictor, spec_from_file, with_file_bytes

    torch.manual_seed(1)
    folder = tmp_path / "driver_only"
    folder.mkdir()
    torch.save(create_model("resnet18", num_classes=4).state_dict(), folder / "state.pt")
    spec = spec_from_file(str(folder / "state.pt"), load_config(None, ["features.n_mels=64"]))
    x = np.random.default_rng(0).standard_normal((3, 1, 64, 30)).astype(np.float32)
    want = load_predictor(spec)(x)
    shipped = with_file_bytes(spec)
    assert shipped.file_bytes == (folder / "state.pt").read_bytes() and "file_bytes" not in repr(shipped)
    shutil.rmtree(folder)  # what a model actor on another node sees of the driver's path
    got = load_predictor(shipped)
    np.testing.assert_array_equal(got(x), want)
    assert got.spec.uri == spec.uri  # it still describes the user's file
    with pytest.raises(FileNotFoundError):
        load_predictor(spec)  # without the bytes, the path is all there is


def test_run_may_name_a_workflow_root_and_means_its_best_run_by_validation(demo_run, tmp_path):
    """`--run runs/demo` (what `make demo` does): the workflow's finished run with the best val UA;
    a root whose runs never finished is a user error naming them."""
    from lssed.predict.model import spec_from_run
    from lssed.storage import Storage

    run, results, _ = demo_run
    root = Storage(str(tmp_path / "wf"))
    shutil.copytree(run.root, root.child("runs", "good").root)
    worse = json.loads(run.read_bytes("results.json"))
    worse["val"]["ua"] = results.val.ua - 0.1
    shutil.copytree(run.root, root.child("runs", "worse").root)
    root.child("runs", "worse").write_bytes(json.dumps(worse).encode(), "results.json")
    root.write_bytes(json.dumps({"runs": ["worse", "good", "unfinished"]}).encode(), "workflow.json")
    assert spec_from_run(root.uri).uri == root.child("runs", "good").uri

    root.write_bytes(json.dumps({"runs": ["unfinished"]}).encode(), "workflow.json")
    with pytest.raises(InputNotFoundError, match="unfinished"):
        spec_from_run(root.uri)
