"""`lssed embed` on the shared demo run: shape, determinism, the model's own penultimate output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
import torch

from lssed.cli import main as cli_main
from lssed.config import load_config
from lssed.embed import EMBEDDING_SCHEMA, embed_features, read_embedding_meta, read_embeddings
from lssed.embed.extract import Embedder, embed_utterances, table_utterances
from lssed.errors import InputNotFoundError, UserError
from lssed.models.export import model_from_run
from lssed.storage import Storage

pytestmark = pytest.mark.ray


def _shards(features_uri: str, columns: list[str]):
    return pads.dataset(str(Path(features_uri) / "shards"), format="parquet").to_table(columns=columns).sort_by("utt_id")


@pytest.fixture(scope="module")
def embedded(demo_run, tmp_path_factory):
    run, _results, features = demo_run
    out = Storage(str(tmp_path_factory.mktemp("embed")))
    res = embed_features(load_config(None, []), features, run_uri=run.uri, out=out, actors=2)
    return res, out, run, features


def test_one_embedding_per_shard_row_of_the_classifier_input_width(embedded) -> None:
    res, out, run, features = embedded
    net, _ = model_from_run(run.uri)
    table = read_embeddings(res.uri)
    shards = _shards(features, ["utt_id", "speaker", "split", "label", "start_s"])
    assert table.schema == EMBEDDING_SCHEMA
    assert table.column("utt_id").to_pylist() == shards.column("utt_id").to_pylist()
    for col in ("speaker", "split", "label", "start_s"):
        assert table.column(col).to_pylist() == shards.column(col).to_pylist()
    vectors = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    assert vectors.shape == (shards.num_rows, net.fc.in_features) == (res.rows, res.dim)
    assert np.isfinite(vectors).all() and vectors.std(axis=0).max() > 0
    # the shards carry the manifest's score column; the demo corpus has no numeric target
    assert "score" in pads.dataset(str(Path(features) / "shards"), format="parquet").schema.names
    assert table.column("score").null_count == table.num_rows
    assert res.uri == out.join_uri("embeddings", "demo-resnet18")


def test_metadata_says_what_made_the_vectors(embedded) -> None:
    res, _out, run, features = embedded
    meta = read_embedding_meta(res.uri)
    assert (meta["source"], meta["source_kind"], meta["model"], meta["layer"]) == \
        (run.uri, "run", "resnet18", "fc input (penultimate)")
    assert (meta["dim"], meta["rows"], meta["fc_in_features"]) == (512, res.rows, 512)
    assert meta["features_uri"] == Storage(features).uri and meta["features_recomputed"] is False
    assert (meta["window_ms"], meta["hop_ms"]) == (64.0, 32.0)  # 1024 / 512 samples at 16 kHz
    assert meta["features"]["n_mels"] == 128 and meta["class_names"] == ["angry", "neutral", "happy", "sad"]


def test_equal_to_the_models_own_penultimate_output(embedded) -> None:
    res, _out, run, features = embedded
    net, _ = model_from_run(run.uri)
    table = read_embeddings(res.uri)
    got = dict(zip(table.column("utt_id").to_pylist(), table.column("embedding").to_pylist()))
    shards = _shards(features, ["utt_id", "n_mels", "n_frames", "logmel"]).to_pylist()
    for row in (shards[0], shards[len(shards) // 2], shards[-1]):
        x = torch.tensor(row["logmel"], dtype=torch.float32).reshape(1, 1, row["n_mels"], row["n_frames"])
        with torch.no_grad():  # what resnet18's forward hands its fc: the time-frequency mean of layer4
            direct = torch.flatten(net.avgpool(net.forward_features(net.check_input(x))), 1)[0].numpy()
        np.testing.assert_allclose(np.asarray(got[row["utt_id"]], np.float32), direct, rtol=1e-4, atol=1e-5)


def test_deterministic_and_through_the_cli(embedded, tmp_path: Path) -> None:
    res, _out, run, features = embedded
    assert cli_main(["embed", features, "--run", run.uri, "--out", str(tmp_path), "--name", "again",
                     "--actors", "1"]) == 0
    again = read_embeddings(str(tmp_path / "embeddings" / "again"))
    first = read_embeddings(res.uri)
    assert again.column("utt_id").equals(first.column("utt_id"))
    np.testing.assert_array_equal(np.asarray(again.column("embedding").to_pylist(), np.float32),
                                  np.asarray(first.column("embedding").to_pylist(), np.float32))


def test_missing_run_is_exit_2(demo_run, tmp_path: Path) -> None:
    _run, _results, features = demo_run
    assert cli_main(["embed", features, "--run", str(tmp_path / "no-such-run"), "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "embeddings").exists()
    with pytest.raises(InputNotFoundError, match="no-such-run has no results.json"):
        embed_features(load_config(None, []), features, run_uri=str(tmp_path / "no-such-run"), out=Storage(str(tmp_path)))


def test_layers(demo_run) -> None:
    """No Ray: the hook on another layer, and an unknown layer."""
    run, _results, features = demo_run
    net, _ = model_from_run(run.uri)
    table = _shards(features, ["utt_id", "split", "n_frames", "logmel"]).slice(0, 3)
    stored = table_utterances(table, n_mels=128, recompute=False)
    device = torch.device("cpu")
    default = embed_utterances(Embedder(net), stored, device)
    # resnet18 pools layer4's output over time and frequency into fc: the same vector
    layer4 = embed_utterances(Embedder(net, "layer4"), stored, device)
    for utt in default:
        np.testing.assert_allclose(layer4[utt], default[utt], rtol=1e-5, atol=1e-6)
    layer3 = embed_utterances(Embedder(net, "layer3"), stored, device)
    assert {v.shape for v in layer3.values()} == {(256,)}
    with pytest.raises(UserError, match="layer9.*top-level modules: conv1"):
        Embedder(net, "layer9")


def test_run_with_other_stft_settings_recomputes_logmel(demo_run, tmp_path: Path) -> None:
    """A run trained at hop 256 on shards made at hop 512: log-mel comes from the stored waveform."""
    import json
    import shutil
    from types import SimpleNamespace

    from lssed.features import logmel

    run, _results, features = demo_run
    other = tmp_path / "runs" / "hop256"
    shutil.copytree(run.root, other)
    results = json.loads((other / "results.json").read_text())
    results["feature_config"]["hop_length"] = 256  # the conv net is size-agnostic: the same weights load
    (other / "results.json").write_text(json.dumps(results))
    res = embed_features(load_config(None, []), features, run_uri=str(other), out=Storage(str(tmp_path)), actors=1)
    meta = res.meta
    assert meta["features_recomputed"] is True and (meta["hop_ms"], meta["window_ms"]) == (16.0, 64.0)
    assert meta["stored_features"]["hop_length"] == 512 and meta["features"]["hop_length"] == 256
    got = dict(zip(*(read_embeddings(res.uri).column(c).to_pylist() for c in ("utt_id", "embedding"))))
    net, _ = model_from_run(str(other))
    row = _shards(features, ["utt_id", "waveform"]).to_pylist()[0]
    wave = torch.tensor(row["waveform"], dtype=torch.float32)[None] / 32768.0
    with torch.no_grad():
        x = logmel(wave, SimpleNamespace(**meta["features"])).unsqueeze(1)  # (1, 1, 128, frames at hop 256)
        direct = torch.flatten(net.avgpool(net.forward_features(net.check_input(x))), 1)[0].numpy()
    np.testing.assert_allclose(np.asarray(got[row["utt_id"]], np.float32), direct, rtol=1e-4, atol=1e-5)


def test_imported_checkpoint_gives_the_runs_vectors(embedded, tmp_path: Path) -> None:
    """The run's weights as an imported state dict, on the stored log-mel: the run's own vectors."""
    res, _out, run, features = embedded
    net, _ = model_from_run(run.uri)
    ckpt = tmp_path / "resnet18-demo.pt"
    torch.save(net.state_dict(), ckpt)
    got = embed_features(load_config(None, []), features, checkpoint=str(ckpt), out=Storage(str(tmp_path)), actors=1)
    assert (got.name, got.meta["source_kind"], got.meta["model"], got.meta["features_recomputed"]) == \
        ("resnet18-demo", "checkpoint", "resnet18", False)
    mine, theirs = read_embeddings(got.uri), read_embeddings(res.uri)
    assert mine.column("utt_id").equals(theirs.column("utt_id"))
    np.testing.assert_array_equal(np.asarray(mine.column("embedding").to_pylist(), np.float32),
                                  np.asarray(theirs.column("embedding").to_pylist(), np.float32))
