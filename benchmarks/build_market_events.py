"""Write data/events/market_crises.csv: US recessions and equity bear markets, with their dates.

Targets (one row per event, columns
``event_id,target,onset,peak,trough,end,depth,source,covered_until``; ISO dates, empty when
unknown or still running; ``covered_until`` is the last date of the data the target's events were
read from: after it, a week without an event is not a calm week but an unobserved one):

- ``us_recession``: NBER recessions from the bundled
  ``data/events/fred_USREC_nber_recession_monthly.csv`` (FRED USREC, 1 = recession month).
  ``onset`` = first month with 1, ``end`` = ``trough`` = last month with 1, ``peak`` = the month
  before ``onset`` (the NBER peak; USREC is 1 from the month after the peak through the
  trough); ``depth`` empty.
- ``sp500_bear``: S&P 500 bear markets from the daily closes of
  ``<shared>/market/sp500_gspc_daily_1927_2023.csv`` (Yahoo ^GSPC, column ``Close``).
- ``csi300_bear``: CSI 300 bear markets from ``<shared>/market/csi300_000300_daily_2002_2020_gbk.csv``
  (NetEase-163 export, GBK, newest row first, close = 收盘价).

Bear markets follow the Yardeni / Ned Davis convention (Yardeni Research's S&P 500 bull and
bear market tables: bear markets are declines of 20 % or more, bull markets gains over 20 % from
the bear-market trough), as :func:`hazards.drawdown_events` implements it: a close 20 % or more
below the running peak starts one (``onset`` = that day, ``peak`` = the peak's day), a close
20 % or more above the lowest close since ends it (``end`` = that day, ``trough`` = the low's
day, ``depth`` = low / peak - 1). Applied without hindsight, a rally of 20 % inside a long
decline ends it: 2000-02 and 2007-09 come out as two bear markets each, where Yardeni's tables
show one.

The price files are not bundled (their terms are unclear, ⚠ in the shared SOURCES.md); the event
dates and depths derived from them are. The output is deterministic: a rerun on the same files
gives the same bytes, which ``tests/test_market_events.py`` checks when the shared folder is there.

Usage: .venv/bin/python benchmarks/build_market_events.py [--shared ../shared/data] [--out PATH]
Exit 2 when the shared folder or one of its price files is missing.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hazards import drawdown_events  # noqa: E402
from ingest.sources import parse  # noqa: E402

COLUMNS = ("event_id", "target", "onset", "peak", "trough", "end", "depth", "source", "covered_until")
USREC = "events/fred_USREC_nber_recession_monthly.csv"
OUT = ROOT / "data" / "events" / "market_crises.csv"
#: target -> (shared file, parser options, how the source column describes it)
EQUITY: dict[str, tuple[str, dict[str, Any], str]] = {
    "sp500_bear": (
        "market/sp500_gspc_daily_1927_2023.csv",
        {"value_columns": {"Close": "sp500"}},
        "S&P 500 daily closes (Yahoo ^GSPC via fja05680/stock_market_calendar@7041e86b; not bundled)",
    ),
    "csi300_bear": (
        "market/csi300_000300_daily_2002_2020_gbk.csv",
        {"value_columns": {"收盘价": "csi300"}, "encoding": "gbk"},
        "CSI 300 daily closes (NetEase-163 via sunday2018/stockHistoryData@f27a8076; not bundled)",
    ),
}


def _day(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d")


def recession_rows(data_dir: Path) -> list[dict[str, str]]:
    """NBER recessions as runs of USREC = 1 (module docstring)."""
    usrec = parse(data_dir / USREC, "fred_csv", unique_id="usrec", frequency="MS").series
    ds, flag = usrec.get_column("ds").to_list(), usrec.get_column("y").to_list()
    unexpected = sorted(set(flag) - {0.0, 1.0})
    if unexpected:
        raise SystemExit(f"{USREC}: USREC must be 0 or 1, found {unexpected}")
    source = f"NBER recession months via FRED USREC ({USREC})"
    rows = []
    for i, value in enumerate(flag):
        if value != 1.0 or (i > 0 and flag[i - 1] == 1.0):
            continue
        last = i
        while last + 1 < len(flag) and flag[last + 1] == 1.0:
            last += 1
        running = last == len(flag) - 1  # still 1 in the newest month: the trough is not known
        rows.append(
            {
                "event_id": f"us_recession_{ds[i]:%Y%m%d}",
                "target": "us_recession",
                "onset": _day(ds[i]),
                "peak": _day(ds[i - 1]) if i > 0 else "",
                "trough": "" if running else _day(ds[last]),
                "end": "" if running else _day(ds[last]),
                "depth": "",
                "source": source,
                "covered_until": _day(ds[-1]),
            }
        )
    return rows


def bear_rows(shared: Path) -> list[dict[str, str]]:
    """Bear markets of the two equity indexes (module docstring), oldest first per target."""
    rows = []
    for target, (relative, options, what) in EQUITY.items():
        closes = parse(shared / relative, "market_table", **options).series
        first, last = closes.get_column("ds").min(), closes.get_column("ds").max()
        source = f"{what} {first:%Y-%m-%d}..{last:%Y-%m-%d}; 20 % decline / 20 % recovery rule"
        for event in drawdown_events(closes).iter_rows(named=True):
            depth = event["depth"]
            rows.append(
                {
                    "event_id": f"{target}_{event['onset']:%Y%m%d}",
                    "target": target,
                    "onset": _day(event["onset"]),
                    "peak": _day(event["peak"]),
                    "trough": _day(event["trough"]),
                    "end": _day(event["end"]),
                    "depth": "" if depth is None else f"{depth:.4f}",
                    "source": source,
                    "covered_until": _day(last),
                }
            )
    return rows


def build(shared: Path, data_dir: Path = ROOT / "data") -> str:
    """The events file's text (LF line endings): recessions, then S&P 500, then CSI 300 bears."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(recession_rows(data_dir) + bear_rows(shared))
    return buffer.getvalue()


def _shared_folder(given: Path | None) -> Path:
    candidates = [given] if given else [ROOT.parent / "shared/data", ROOT.parent.parent / "shared/data"]
    shared = next((p for p in candidates if p.is_dir()), None)
    wanted = [relative for relative, _, _ in EQUITY.values()]
    if shared is None or any(not (shared / relative).is_file() for relative in wanted):
        where = shared or " or ".join(str(p) for p in candidates)
        print(
            f"no shared data with {wanted} at {where}; pass --shared PATH (the folder holding market/)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return shared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--shared", type=Path, default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output CSV (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    shared = _shared_folder(args.shared)
    text = build(shared)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(text.encode("utf-8"))
    frame = pl.read_csv(io.StringIO(text), infer_schema=False)
    for target, group in frame.group_by("target", maintain_order=True):
        print(f"{target[0]}: {group.height} event(s)")
        for row in group.iter_rows(named=True):
            print(
                f"  onset {row['onset']}  peak {row['peak'] or '?':10}  trough {row['trough'] or '-':10}  "
                f"end {row['end'] or 'running':10}  depth {row['depth'] or '':>7}"
            )
    print(f"wrote {frame.height} events to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
