"""The NAB scorer against hand-computed cases and NAB's published numbers, and `ews evaluate nab`.

Data: two NAB files with their official windows in tests/data/nab (MIT, tests/data/README.md).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from anomaly.evaluation import (
    NAB_PROFILES,
    NabFile,
    nab_point_weights,
    nab_probation_length,
    nab_score,
    point_pr_auc,
    range_pr_auc,
    vus_pr,
)
from core.errors import FrameError
from pipelines.cli.main import main

NAB = Path(__file__).parent / "data" / "nab"
SHARED_NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "labeled_anomalies" / "nab"
T0 = datetime(2024, 1, 1)


def _file(n: int, windows: list[tuple[int, int]], hits: dict[int, float], name: str = "f") -> NabFile:
    ts = np.array([np.datetime64(T0 + timedelta(minutes=5 * i), "us") for i in range(n)])
    scores = np.zeros(n)
    for i, v in hits.items():
        scores[i] = v
    lims = tuple((T0 + timedelta(minutes=5 * a), T0 + timedelta(minutes=5 * b)) for a, b in windows)
    return NabFile(name, ts, scores, lims)


def _s(x: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def test_probation_is_fifteen_percent_capped_at_750_rows() -> None:
    assert nab_probation_length(1000) == 150
    assert nab_probation_length(4032) == 604
    assert nab_probation_length(22695) == 750


def test_weights_match_hand_computed_sigmoid_positions() -> None:
    f = _file(1000, [(500, 599)], {})
    w, ids = nab_point_weights(f, NAB_PROFILES["standard"])
    assert w[500] == pytest.approx(1.0)  # earliest point of a window earns the full tp weight
    assert w[550] == pytest.approx(_s(-50 / 100) / _s(-1.0))
    assert w[599] == pytest.approx(_s(-1 / 100) / _s(-1.0))
    assert w[300] == pytest.approx(-0.11)  # before any window: the full FP cost
    assert w[600] == pytest.approx(0.11 * _s(1 / 99))  # just after the window: almost free
    assert w[999] == pytest.approx(-0.11, abs=1e-3)  # far after: the full cost again
    assert (ids[:150] == -2).all() and ids[500] == 0 and ids[700] == -1


def test_hand_computed_scores_at_a_fixed_threshold() -> None:
    # One early detection, one FP before the window, one FP far after; second window missed.
    f = _file(2000, [(500, 599), (1500, 1599)], {510: 1.0, 520: 0.9, 300: 1.0, 1900: 1.0, 100: 1.0})
    result = nab_score([f], profile="standard", threshold=0.95)
    expected_tp = _s(-(599 - 510 + 1) / 100) / _s(-1.0)
    expected_fp = -0.11 + 0.11 * _s(abs(1599 - 1900) / 99)  # row 1900 is 301 past window 2
    assert result.raw_score == pytest.approx(expected_tp - 1.0 + expected_fp)
    file = result.files[0]
    assert (file.tp, file.fp, file.windows, file.windows_detected) == (1, 2, 2, 1)
    assert result.null_score == -2.0 and result.perfect_score == 2.0
    low_fn = nab_score([f], profile="reward_low_FN_rate", threshold=0.95)
    assert low_fn.raw_score == pytest.approx(expected_tp - 2.0 + expected_fp)


def test_null_detector_scores_zero_and_perfect_detector_one_hundred() -> None:
    windows = [(400, 449), (900, 979)]
    null = [_file(1200, windows, {}, "a"), _file(1200, [(700, 760)], {}, "b")]
    for profile in NAB_PROFILES:
        assert nab_score(null, profile=profile).normalised == pytest.approx(0.0)
    perfect = [_file(1200, windows, {400: 1.0, 900: 1.0}, "a"), _file(1200, [(700, 760)], {700: 1.0}, "b")]
    for profile in NAB_PROFILES:
        assert nab_score(perfect, profile=profile).normalised == pytest.approx(100.0)


def test_threshold_is_optimised_once_for_the_whole_corpus() -> None:
    # File a wants a low threshold (its window point scores 0.3); file b has a 0.3 false alarm.
    a = _file(1000, [(500, 520)], {505: 0.3}, "a")
    b = _file(1000, [(500, 520)], {505: 0.9, 800: 0.3, 801: 0.3}, "b")
    result = nab_score([a, b])
    assert result.threshold == pytest.approx(0.3)  # catching a's window beats two cheap FPs
    assert [f.windows_detected for f in result.files] == [1, 1]
    with pytest.raises(FrameError, match="NaN"):
        NabFile("x", a.timestamps, np.full(1000, np.nan), a.windows)


def test_published_totals_normalise_to_the_published_scoreboard() -> None:
    results = SHARED_NAB / "results"
    if not results.is_dir():
        pytest.skip("shared NAB results are not on this machine")
    final = json.loads((results / "final_results.json").read_text())
    windows = sum(len(v) for v in json.loads((SHARED_NAB / "labels" / "combined_windows.json").read_text()).values())
    for detector in ("numenta", "randomCutForest", "windowedGaussian"):
        for profile, cost in NAB_PROFILES.items():
            lines = (results / detector / f"{detector}_{profile}_scores.csv").read_text().splitlines()
            total = float(lines[-1].split(",")[4])
            null, perfect = -cost.fn * windows, cost.tp * windows
            assert 100 * (total - null) / (perfect - null) == pytest.approx(final[detector][profile], abs=1e-6)


def test_range_metrics_reward_early_and_complete_detection() -> None:
    labels = np.zeros(1000, dtype=np.int8)
    labels[300:320] = 1
    labels[700:710] = 1
    perfect = labels.astype(float)
    rng = np.random.default_rng(0)
    noise = rng.random(1000)
    assert range_pr_auc(labels, perfect) == pytest.approx(1.0, abs=0.02)
    # Buffers widen the labels beyond a binary detection, so even a perfect 0/1 score loses some.
    assert vus_pr(labels, perfect) > 0.75
    assert vus_pr(labels, noise) < 0.2
    assert point_pr_auc(labels, perfect) == pytest.approx(1.0)
    half = perfect.copy()
    half[700:710] = 0  # one of the two ranges missed: recall halves through the existence term
    assert range_pr_auc(labels, half) < 0.75


def test_ews_evaluate_nab_reports_profiles_files_and_the_baseline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    labels = json.loads((NAB / "labels" / "windows_subset.json").read_text())
    labels["realKnownCause/not_here.csv"] = [["2014-01-01 00:00:00.000000", "2014-01-02 00:00:00.000000"]]
    label_file = tmp_path / "windows.json"
    label_file.write_text(json.dumps(labels))
    code = main(
        [
            "--home",
            str(tmp_path / "home"),
            "evaluate",
            "nab",
            "--data",
            str(NAB / "data"),
            "--labels",
            str(label_file),
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("nab_score", "nab_score_low_fp", "nab_score_low_fn", "vus_pr", "range_auc_pr"):
        assert isinstance(report[key], float)
        assert isinstance(report["iforest_baseline"][key], float)
    assert report["missing_files"] == ["realKnownCause/not_here.csv"]
    assert {f["file"] for f in report["files"]} == set(labels) - {"realKnownCause/not_here.csv"}
    assert report["windows"] == 4
    # The engine finds the artificial level jump inside its window.
    jumps = next(f for f in report["files"] if f["file"].endswith("art_daily_jumpsup.csv"))
    assert jumps["windows_detected"] == 1
    assert report["nab_score"] > report["iforest_baseline"]["nab_score"]
