"""Table 6 of the report: participant-level depression detection from utterance embeddings
(``lssed transfer``), and the paragraph on the analysis windows each embedding used."""

from __future__ import annotations

from typing import Any, Sequence

from lssed.report.tables import Table


def _ci_text(ci: dict[str, Any]) -> str:
    return "; ".join(f"{k} [{lo:.2f}, {hi:.2f}]" for k, (lo, hi) in ci.items())


def transfer_windows_text(results: Sequence[Any]) -> str:
    """The paragraph on analysis windows, from the settings the transfer's embeddings actually used."""
    parts, ser, asr = [], [], []
    for res in results:
        for s in res.sets:
            if s.window_ms is None:
                continue
            hop = f", hop {s.hop_ms:g} ms" if s.hop_ms is not None else ""
            what = {"ser": "log-mel STFT window", "baseline": "analysis window"}.get(s.kind, "window")
            if s.features.startswith("wav2vec2"):
                what = "receptive field of the convolutional front end"
                asr.append(s.window_ms)
            elif s.kind == "ser":
                ser.append(s.window_ms)
            parts.append(f"{s.features}: {what} {s.window_ms:g} ms{hop}")
    if not parts:
        return ""
    text = ("Windows (the paper argues SER features transfer better than ASR features partly because they "
            "are acoustic and computed over wider windows, about 64 ms vs 25 ms); the settings used here: "
            + "; ".join(sorted(set(parts))) + ".")
    if ser and asr:
        text += (f" The SER model's window is {max(ser):g} ms, {max(ser) / min(asr):.1f}x the ASR encoder's "
                 f"{min(asr):g} ms.")
    elif ser:
        text += " No ASR encoder ran (transfer.baselines without wav2vec2), so this table has no ASR row to compare."
    return text


def table6_transfer(results: Sequence[Any]) -> Table:
    """Table 6: participant-level depression detection from each embedding (SER runs, baselines).

    ``results``: :class:`lssed.transfer.stage.TransferResults`. One row per (features,
    classifier); logreg/svm rows carry the PHQ-8 binary scores (F1 of the depressed class,
    macro-F1, UA; fractions), the ridge row the PHQ-8 score regression (MAE, RMSE; points);
    ``ci`` the percentile bootstrap 95% intervals over dev participants.
    """
    rows = []
    several = len(results) > 1
    for res in results:
        for s in res.sets:
            label = s.features + (" (untrained)" if s.untrained else "")
            if several:
                label = f"{res.name}: {label}"
            for sc in s.scores:
                m = sc["metrics"]
                rows.append((label, sc["classifier"], m.get("f1_depressed"), m.get("macro_f1"), m.get("ua"),
                             m.get("mae"), m.get("rmse"), sc["n_train"], sc["n_dev"], _ci_text(sc.get("ci") or {})))
    notes = []
    if not results:
        notes.append("no transfer results: run `lssed transfer FEATURES --run RUN` or the workflow with a "
                     "`transfer:` corpus")
    if any(s.untrained for r in results for s in r.sets):
        notes.append("(untrained): the encoder's weights are not its trained ones (generated for a test or a smoke "
                     "run, transfer.wav2vec2_untrained); such rows show the pipeline works, not what ASR features do")
    windows = transfer_windows_text(results)
    if windows:
        notes.append(windows)
    protocol = ""
    if results:
        r0 = results[0]
        cfg = r0.config or {}
        protocol = (f"{r0.corpus}: one row per participant (mean and std of its utterance embeddings + its utterance "
                    f"count); {r0.n_train} training / {r0.n_dev} dev participants (dev = split {r0.dev_split}); "
                    f"C (logreg, svm) and alpha (ridge) chosen by participant-grouped {cfg.get('cv_folds', '?')}-fold "
                    "CV on the training participants only, refit, scored once on dev; headline: F1 of the "
                    f"'{r0.positive_label}' class; 95% CI: percentile bootstrap over dev participants "
                    f"({cfg.get('bootstrap', '?')} resamples, seed {cfg.get('seed', '?')})")
    columns = ("features", "classifier", "f1_depressed", "macro_f1", "ua", "mae", "rmse", "n_train", "n_dev", "ci")
    return Table("table6_transfer", "Table 6: depression detection (PHQ-8) from utterance embeddings, per "
                 "participant on dev: SER vs baselines (F1, macro-F1, UA as fractions; MAE, RMSE in PHQ-8 points)",
                 columns, tuple(rows), protocol, tuple(notes))
