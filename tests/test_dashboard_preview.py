"""The Data page's upload preview (AppTest on the real demo home): the roles that may load data
(``data.ingest``) get the same preview as ``ews ingest file --dry-run`` against the read
snapshot, shown as text and tables only; a viewer gets no uploader; nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.clock import utc_now
from core.settings import load_settings
from ingest.preview import preview_file
from tests.dashboard_home import PASSWORD, copy_home
from warehouse import Warehouse
from warehouse.snapshots import current_snapshot, open_snapshot, publish_snapshot, snapshot_folder

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboards" / "app.py"
CHOPTANK = ROOT / "data" / "hydro" / "usgs_01491000_choptank_daily_flow_cms.txt"
TIMEOUT = 120
# the bundled file's own options (ingest/sources/catalogue.py), so the upload names the stored series
OPTIONS = {"unique_id": "usgs_01491000_discharge", "site_no": "01491000", "region": "Maryland, US"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_home(tmp_path_factory, "preview")


def _data_page(role: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("EWS_HOME", str(home))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.text_input(key="signin_name").input(f"{role}_user")
    at.text_input(key="signin_password").input(PASSWORD[role])
    at.button(key="signin_submit").click().run()
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Data"]
    return at


def _written(home: Path) -> tuple:
    """What a load would change: the warehouse file and the raw landing area."""
    wh = home / "warehouse.duckdb"
    return wh.read_bytes(), wh.stat().st_mtime_ns, sorted(str(p) for p in (home / "raw").rglob("*"))


def test_an_analyst_previews_an_upload_against_the_snapshot_and_nothing_is_written(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = CHOPTANK.read_text().splitlines()
    lines[201] = lines[201].split("\t")[0] + "\t987654"  # beyond any river on Earth
    lines[202] = lines[202].split("\t")[0] + "\t" + str(float(lines[202].split("\t")[1]) + 1.0)
    data = ("\n".join(lines) + "\n").encode()
    name = "choptank_[revised](x).txt"  # Markdown in a file name must stay text
    before = _written(home)
    at = _data_page("analyst", home, monkeypatch)
    assert "Preview a file before loading it" in [h.value for h in at.subheader]
    at.text_area(key="preview_options").input(json.dumps(OPTIONS))
    at.file_uploader(key="preview_upload").set_value((name, data, "text/plain"))
    at.run()
    assert not at.exception, at.exception
    # the same preview the CLI computes against the same snapshot
    upload = tmp_path / name
    upload.write_bytes(data)
    snap = current_snapshot(snapshot_folder(load_settings(home)))
    assert snap is not None
    with open_snapshot(snap) as wh:
        expected = preview_file(upload, options=dict(OPTIONS), settings=load_settings(home), wh=wh)
    assert expected.fmt == "usgs_daily_flow" and expected.outcome == "quarantine"
    markdown = [m.value for m in at.markdown]
    assert markdown[0].startswith(r"choptank\_\[revised\]\(x\)\.txt\: format usgs\_daily\_flow, detected")
    frames = [d.value for d in at.dataframe]
    series = next(f for f in frames if "new_rows" in f.columns)
    counted = ["unique_id", "rows", "unit", "region", "stored", "new_rows", "changed_rows", "unchanged_rows"]
    assert series[counted].to_dict("records") == expected.series.select(counted).to_dicts()
    assert list(series["stored"]) == ["stored"] and int(series["changed_rows"].iloc[0]) == 2
    reasons = [f.reason for f in expected.findings]
    assert reasons and reasons[0].startswith("impossible values: 1 value(s) of usgs_01491000_discharge")
    shown = "\n".join(markdown).replace("\\", "")
    assert all(f"Would be quarantined: {r}" in shown for r in reasons)
    assert any("987654" in f.to_string() for f in frames if "y" in f.columns)
    assert [e.value.replace("\\", "") for e in at.error] == [
        f"Loading it would quarantine batch {expected.batch_id} (1 reason(s))."
    ]
    assert _written(home) == before


def test_a_viewer_gets_no_uploader(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _data_page("viewer", home, monkeypatch)
    assert len(at.file_uploader) == 0
    assert "Preview a file before loading it" not in [h.value for h in at.subheader]
    assert [h.value for h in at.subheader][:3] == ["Runs", "Ledger of ingested batches", "Quarantined batches"]


def test_an_analyst_cannot_preview_against_a_series_classified_above_their_clearance(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preview's changed/unchanged counts would confirm guessed values of a confidential
    series; an analyst cleared for public data gets an error naming the series, no tables."""
    home = copy_home(tmp_path_factory, "preview_classified")
    settings = load_settings(home)
    with Warehouse.open(settings.warehouse_path) as wh:
        wh._execute("UPDATE series SET classification = 'confidential' WHERE unique_id = ?", [OPTIONS["unique_id"]])
        publish_snapshot(wh, snapshot_folder(settings), now=utc_now(), keep=settings.dashboard.snapshots_keep)
    at = _data_page("analyst", home, monkeypatch)
    at.text_area(key="preview_options").input(json.dumps(OPTIONS))
    at.file_uploader(key="preview_upload").set_value((CHOPTANK.name, CHOPTANK.read_bytes(), "text/plain"))
    at.run()
    assert not at.exception, at.exception
    errors = [e.value.replace("\\", "") for e in at.error]
    assert len(errors) == 1 and "classified above your clearance (public): usgs_01491000_discharge" in errors[0]
    assert not [d for d in at.dataframe if "new_rows" in d.value.columns]  # no comparison shown
    # the same upload under another id is previewed as new
    at.text_area(key="preview_options").input(json.dumps({**OPTIONS, "unique_id": "my_choptank"}))
    at.run()
    assert not at.error, [e.value for e in at.error]
    series = next(d.value for d in at.dataframe if "new_rows" in d.value.columns)
    assert list(series["stored"]) == ["new"]
