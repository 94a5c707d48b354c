"""`ews evaluate market` on the bundled data: out of sample, baselines in the same run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.settings import load_settings
from pipelines.market_evaluation import evaluate_market, market_table_markdown
from pipelines.market_step import indicator_specs

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    settings = load_settings(tmp_path_factory.mktemp("home"))
    return evaluate_market(DATA, indicator_specs(settings.markets))


def test_every_split_trains_on_its_own_period_and_lists_the_baselines(report: dict) -> None:
    rec = report["targets"]["us_recession"]["train to 1999, test 2000 on"]
    # training only knows outcomes by its end: the 1981 and 1990 recessions, not 2001
    assert rec["train_crises"] == ["1981-08-01", "1990-08-01"]
    assert rec["test_crises"] == ["2001-04-01", "2008-01-01", "2020-03-01"]
    assert rec["train_span"][1] <= "1999-12-31" < rec["test_span"][0]
    names = [r["indicator"] for r in rec["rows"]]
    for expected in (
        "composite",
        "curve_inversion",
        "signal share (level yellow+)",
        "STLFSI4 > 0",
        "STLFSI4 > 1",
        "IForest on the raw indicators",
    ):
        assert expected in names
    assert any(n.startswith("current grading") for n in names)
    csi = report["targets"]["csi300_bear"]["train 2002-2010, test 2011 on"]
    # a week of late 2010 does not learn from the August 2011 fall; its warning window starts
    # before the test period, so POD does not count it either (hazards.signal_skill's rule)
    assert "2011-08-08" not in csi["train_crises"] and "2011-08-08" not in csi["test_crises"]
    assert csi["test_crises"] == ["2015-06-29", "2018-06-27"]
    # the CSI 300 closes the bear markets were read from end 2020-10-16: later weeks are
    # unobserved, not calm (the file's covered_until), while recessions run to 2025-12
    assert csi["labelled_until"] == "2020-10-16"
    assert rec["labelled_until"] == "2025-12-01"


def test_the_yield_curve_leads_recessions_out_of_sample(report: dict) -> None:
    """The one published regularity the bundled data can show: an inverted curve precedes US
    recessions. Thresholded on its own past's percentiles (fitted 1981-1999) it warns of all
    three recessions after 2000 with NSR below 0.5 (KLR's "good"); its AUROC, 0.79, misses the
    issue's 0.85 because the 2022-24 inversion, the longest on record, was followed by no
    recession up to the end of the NBER months (2025-12). The coincident stress composite does
    worse (the figures docs/markets.md reports)."""
    rows = {r["indicator"]: r for r in report["targets"]["us_recession"]["train to 1999, test 2000 on"]["rows"]}
    curve = rows["curve_inversion"]
    assert 0.75 <= curve["auroc"] < 0.85 and curve["nsr"] < 0.5 and (curve["detected"], curve["events"]) == (3, 3)
    assert rows["composite"]["auroc"] < curve["auroc"]
    reverse = {
        r["indicator"]: r for r in report["targets"]["us_recession"]["reverse: train 2000 on, test to 1999"]["rows"]
    }
    assert reverse["curve_inversion"]["auroc"] > 0.7
    table = market_table_markdown(report)
    assert "| curve_inversion | indicator |" in table and "S&P 500 falls 20 %" in table


def test_a_split_without_training_crises_says_so(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    from pipelines.market_evaluation import Split

    out = evaluate_market(
        DATA,
        indicator_specs(settings.markets),
        targets=("us_recession",),
        splits={
            "us_recession": [
                Split("quiet", (dt.datetime(1992, 1, 1), dt.datetime(1999, 1, 1)), (dt.datetime(2000, 1, 1), None))
            ]
        },
    )
    assert "nothing to fit" in out["targets"]["us_recession"]["quiet"]["note"]


def test_an_events_file_with_a_bad_date_or_no_rows_names_the_fix(tmp_path: Path) -> None:
    from core.errors import FrameError
    from pipelines.market_step import read_market_events

    text = (DATA / "events" / "market_crises.csv").read_text(encoding="utf-8").splitlines()
    header, first = text[0], text[1].split(",")
    first[4] = "1980-13-45"  # trough
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([header, ",".join(first), *text[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(FrameError, match="line 2: trough '1980-13-45' is not a date"):
        read_market_events(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text(header + "\n", encoding="utf-8")
    with pytest.raises(FrameError, match="holds no events"):
        read_market_events(empty)
