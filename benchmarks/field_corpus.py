"""Data-field text for the injection screen: what this engine's fields really carry, by source.

The engine screens free-text fields (station and series names, place strings, units, source
notes, CSV comments, incoming CAP texts) before they reach a prompt. This module reads that
kind of text from real files, never writes it by hand, and keeps each row's provenance
(``source``, ``path``, ``licence``). Sources are split whole (:data:`TRAIN_SOURCES`,
:data:`EVAL_SOURCES`): a source is either trained on or evaluated, never both, and an
evaluation row whose normalised text also occurs in a training source is dropped.

- Training sources (bundled in ``data/``, licence-clean, so their rows may be bundled in the
  screen's training set): USGS ComCat ``place`` strings ("10 km SSW of ..."), NOAA NCEI
  ``Location Name`` (Asia cut), the ``#`` comment lines of the bundled NWIS RDB file, the
  header of the bundled PBO GNSS file, and the names, regions, units and sources of the
  engine's own series catalogue.
- Evaluation sources (read from ../shared/data when present, else the copies in tests/data;
  some carry an unclear licence, so their rows are only ever read at run time, never bundled):
  headline / description / instruction / event / areaDesc / senderName of every real CAP
  sample in every language it carries; NCEI's global ``Location Name`` (all years); FRED
  series titles, units and notes; the ``#`` headers of SOPAC-style GNSS files.

:func:`field_attacks` places attack rows into evaluation-source fields: alone, appended to a
real place name, or inside a CSV comment (rotating, fixed by the row's index).

Usage (a summary of the rows per source): .venv/bin/python benchmarks/field_corpus.py
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sys
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.injection_model import normalise  # noqa: E402

#: ../shared/data beside the checkout (EWS_SHARED_DATA overrides it, e.g. from a git worktree)
SHARED = Path(os.environ.get("EWS_SHARED_DATA") or ROOT.parent / "shared" / "data")
#: ComCat place strings in the training set: the ones with the smallest SHA-256 (a fixed pick)
COMCAT_PLACES = 600
TRAIN_SOURCES = ("usgs_comcat_place", "ncei_asia_location", "nwis_rdb_comments", "pbo_gnss_header", "ews_catalogue")
EVAL_SOURCES = ("cap_texts", "ncei_global_location", "fred_titles", "sopac_gnss_header")
PLACEMENTS = ("alone", "after_place_name", "csv_comment")
_CAP_NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
_CAP_FIELDS = ("headline", "description", "instruction", "event", "senderName")
MAX_TEXT = 2000  # longer CAP descriptions are cut (the screen reads the first 1,600 characters)


def _row(source: str, text: str, path: Path, licence: str, **extra: str) -> dict:
    text = re.sub(r"[ \t]+", " ", text).strip()[:MAX_TEXT]
    # project files by their path in the project, shared files by their path in the shared
    # collection: never the folder the checkout happens to sit in (the corpus hash is shipped)
    if path.is_relative_to(ROOT):
        where: Path = path.relative_to(ROOT)
    elif path.is_relative_to(SHARED):
        where = Path("shared/data") / path.relative_to(SHARED)
    else:
        where = path
    return {"source": source, "text": text, "path": str(where), "licence": licence, **extra}


def _first(*paths: Path) -> Path | None:
    return next((p for p in paths if p.exists()), None)


# -- training sources (bundled in data/) ------------------------------------------------------


def _comcat_places() -> list[dict]:
    path = ROOT / "data" / "seismic" / "usgs_comcat_eastasia_m4_2018_2023.csv"
    with path.open(encoding="cp1252", newline="") as handle:
        places = {r["place"].strip() for r in csv.DictReader(handle) if r.get("place")}
    chosen = sorted(places, key=lambda p: hashlib.sha256(p.encode("utf-8")).hexdigest())[:COMCAT_PLACES]
    return [_row("usgs_comcat_place", p, path, "public domain (USGS)") for p in sorted(chosen)]


def _ncei_locations(path: Path, source: str) -> list[dict]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        names = {r["Location Name"].strip() for r in csv.DictReader(handle) if (r.get("Location Name") or "").strip()}
    return [_row(source, n, path, "public domain (NOAA NCEI)") for n in sorted(names)]


def _comment_lines(path: Path, source: str, licence: str, prefix: str = "#") -> list[dict]:
    """Comment lines with text in them (a line of dashes or a bare ``#`` is no field)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    out = []
    for line in lines:
        if line.startswith(prefix) and re.search(r"[A-Za-z]{3}", line):
            out.append(_row(source, line, path, licence))
    return out


def _pbo_header() -> list[dict]:
    path = ROOT / "data" / "geodetic" / "gnss_P156_pbo_california_2006_2015.pos"
    lines = path.read_text(encoding="utf-8").splitlines()
    head = lines[: next(i for i, line in enumerate(lines) if line.startswith("*"))]
    licence = "EarthScope / UNAVCO PBO data (NSF), bundled in data/geodetic, see data/PROVENANCE.md"
    return [_row("pbo_gnss_header", line, path, licence) for line in head if line.strip()]


def _catalogue() -> list[dict]:
    from ingest.sources.catalogue import SEISMIC_REGIONS, SST_REGIONS, bundled_catalogue

    path = ROOT / "ingest" / "sources" / "catalogue.py"
    texts: set[str] = set()
    for entry in bundled_catalogue(ROOT / "data"):
        for key in ("name", "region", "unit", "source"):
            value = entry.options.get(key)
            if isinstance(value, str) and value.strip():
                texts.add(value)
    texts |= {b["name"] for group in SEISMIC_REGIONS.values() for b in group} | {b["name"] for b in SST_REGIONS}
    return [
        _row("ews_catalogue", t, path, "the engine's own text (ingest/sources/catalogue.py)") for t in sorted(texts)
    ]


def training_rows() -> list[dict]:
    """Field rows of the training sources (all bundled in the project's data/)."""
    rdb = ROOT / "data" / "hydro" / "usgs_nwis_rdb_02177000_chattooga_2012.rdb"
    rows = (
        _comcat_places()
        + _ncei_locations(
            ROOT / "data" / "events" / "noaa_ncei_significant_earthquakes_asia_2005_2023.csv", "ncei_asia_location"
        )
        + _comment_lines(rdb, "nwis_rdb_comments", "public domain (USGS NWIS)")
        + _pbo_header()
        + _catalogue()
    )
    return _dedupe(rows)


# -- evaluation sources (shared data, else tests/data) ----------------------------------------


def _cap_texts() -> list[dict]:
    folder = SHARED / "cap" if (SHARED / "cap").exists() else ROOT / "tests" / "data" / "cap"
    licence = "public warnings of national met services, via wmo-im/capvalidator (Apache-2.0)"
    rows = []
    for path in sorted(folder.glob("*_valid.xml")):
        try:
            root = etree.fromstring(path.read_bytes())
        except etree.XMLSyntaxError:  # a broken sample is not a row
            continue
        for info in root.findall("cap:info", _CAP_NS):
            language = info.findtext("cap:language", default="", namespaces=_CAP_NS)
            for field in _CAP_FIELDS:
                for el in info.findall(f"cap:{field}", _CAP_NS):
                    if el.text and el.text.strip():
                        rows.append(_row("cap_texts", el.text, path, licence, field=field, language=language))
            for el in info.findall("cap:area/cap:areaDesc", _CAP_NS):
                if el.text and el.text.strip():
                    rows.append(_row("cap_texts", el.text, path, licence, field="areaDesc", language=language))
    return rows


def _fred_titles() -> list[dict]:
    path = SHARED / "market" / "fred_datalist_daily_README.txt"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    licence = "FRED metadata (mixed; SOURCES.md marks it unclear): read at run time, never bundled"
    rows = []
    for i, line in enumerate(lines):
        if line.strip() in ("Title", "Units", "Notes") and i + 1 < len(lines):
            text = " ".join(takewhile_text(lines[i + 1 :]))
            if text:
                rows.append(_row("fred_titles", text, path, licence, field=line.strip().lower()))
    return rows


def takewhile_text(lines: list[str]) -> list[str]:
    """The lines of one README entry: up to the next blank line."""
    out = []
    for line in lines:
        if not line.strip():
            break
        out.append(line.strip())
    return out


def _sopac_headers() -> list[dict]:
    rows = []
    for path in (
        SHARED / "geodetic_or_hydro" / "gnss_USUD_usuda_japan_1999_2013.neu",
        ROOT / "tests" / "data" / "ingest" / "bjfsCleanUnf_1999_2000.neu",
    ):
        if path.exists():
            rows += _comment_lines(path, "sopac_gnss_header", "IGS / SOPAC station file headers (free with citation)")
    return rows


def evaluation_rows() -> list[dict]:
    """Field rows of the evaluation sources, minus any text a training source also holds."""
    ncei = _first(SHARED / "events" / "noaa_ncei_significant_earthquakes_2150bc_2023.csv")
    rows = _cap_texts() + _fred_titles() + _sopac_headers()
    if ncei is not None:
        rows += _ncei_locations(ncei, "ncei_global_location")
    seen = {normalise(r["text"]) for r in training_rows()}
    return [r for r in _dedupe(rows) if normalise(r["text"]) not in seen]


def _dedupe(rows: list[dict]) -> list[dict]:
    out, seen = [], set()
    for r in rows:
        key = normalise(r["text"])
        if key and key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _pick(items: list[str], key: str) -> str:
    """A deterministic pick from ``items`` by the SHA-256 of ``key``."""
    return items[int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % len(items)]


def place_names(rows: list[dict]) -> list[str]:
    """Short place-like texts of the evaluation rows (NCEI locations, CAP areaDesc)."""
    return [
        r["text"]
        for r in rows
        if (r["source"] == "ncei_global_location" or r.get("field") == "areaDesc") and len(r["text"]) <= 80
    ]


def field_attacks(attacks: list[tuple[str, str]], rows: list[dict]) -> list[dict]:
    """Each ``(corpus, attack text)`` placed into a field: alone, appended to a real place name of
    the evaluation rows, or as the text of a CSV comment (``# ...`` on every line), rotating."""
    places = place_names(rows)
    if not places:
        raise ValueError("no place names among the evaluation field rows to append attacks to")
    out = []
    for i, (corpus, attack) in enumerate(attacks):
        placement = PLACEMENTS[i % len(PLACEMENTS)]
        if placement == "alone":
            text = attack
        elif placement == "after_place_name":
            text = f"{_pick(places, attack)} {attack}"
        else:
            text = "\n".join("# " + line for line in attack.splitlines() or [attack])
        out.append({"corpus": corpus, "placement": placement, "text": text, "attack": attack})
    return out


def main() -> None:
    train, evaluation = training_rows(), evaluation_rows()
    counts: dict[str, int] = {}
    for r in train + evaluation:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
    languages = sorted({r.get("language", "") for r in evaluation if r.get("language")})
    print(
        json.dumps(
            {"train_rows": len(train), "eval_rows": len(evaluation), "per_source": counts, "cap_languages": languages}
        )
    )


if __name__ == "__main__":
    main()
