"""A real HTTP server on 127.0.0.1 that answers like the public data services, from bundled files.

Used by tests/test_connectors.py and tests/test_scheduler.py. Every answer is built from the
project's bundled real data (data/, tests/data/), in the response layout of the service:

| path | service imitated | built from |
|---|---|---|
| ``/fred/series``, ``/fred/series/observations`` | FRED API (JSON, values as text, "." missing) | ``data/market/fred_UNRATE.csv``, ``tests/data/fred_DGS10_last800.csv`` |
| ``/fdsnws/event/1/query`` | USGS FDSN event service, ``format=csv`` | ``data/seismic/usgs_comcat_eastasia_m4_2018_2023.csv`` (a real ComCat query answer), filtered by starttime/endtime/minmagnitude/box/updatedafter; 400 "exceeds search limit" above ``event_cap``; 204 when empty |
| ``/ingv/fdsnws/event/1/query`` | any ``fdsnws-event`` service (INGV's), ``format=xml`` or ``format=text`` | the three real INGV QuakeML answers ``tests/data/ingest/ingv_fdsnws_event_*.qml``: ``xml`` answers copy their ``<event>`` elements (lxml) into one INGV-style document; ``text`` answers are ObsPy's FDSN-text (``EVENTTXT``) writing of the same events with INGV's bare event ids; filtered by starttime/endtime/minmagnitude/updatedafter (an event's update time is the latest ``creationTime`` in it); 204 when empty |
| ``/ogcapi/daily/items`` | USGS Water Data OGC API daily items (GeoJSON, cursor pages) | ``data/hydro/usgs_nwis_rdb_02177000_chattooga_2012.rdb`` (ft³/s as recorded) |
| ``/ngl/<STATION>.tenv3`` | Nevada Geodetic Lab tenv3 | ``data/geodetic/gnss_P156_pbo_california_2006_2015.pos`` rewritten in the tenv3 layout (same daily positions) |
| ``/power/daily/point`` | NASA POWER daily point JSON | no POWER recording is available offline: the documented layout, with the bundled Choptank daily discharge numbers standing in as ``PRECTOTCORR`` values (the tests check transport, fill values and parsing, not meteorology) |
| ``/grids/sst.nc`` | a NetCDF file server | ``data/satellite/noaa_ersstv5_sst_monthly_2010_2020.nc`` (bytes as bundled) |

Faults: ``server.faults[path] = ["500", "429", "slow", "truncate", "malformed", "drop", "403"]``
are consumed one per request to ``path`` (then normal answers resume). ``slow`` sleeps longer
than the client timeout the tests configure; ``truncate`` announces more bytes than it sends.
Issue 20's faults: ``429ra`` (429 with ``Retry-After: 1``), ``hang`` (reads the request and
never answers, for ``hang_seconds``), ``drip`` (the real answer, one byte every
``drip_seconds``), ``cut_nolength`` (the first half of the real answer, cut at a line end when
it has lines, with no Content-Length, then the connection closes), ``stale`` (the same cut,
framed by its own Content-Length: a whole-looking older answer), ``html200`` (a maintenance
page with status 200) and ``wrongjson`` (a JSON list with status 200).
"""  # noqa: E501 - the table rows above name recorded paths and files whole

from __future__ import annotations

import csv
import io
import json
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
FRED_FILES = {
    "UNRATE": DATA / "market" / "fred_UNRATE.csv",
    "DGS10": ROOT / "tests" / "data" / "fred_DGS10_last800.csv",
}
FRED_INFO = {
    "UNRATE": {"id": "UNRATE", "title": "Unemployment Rate", "units": "Percent", "frequency_short": "M"},
    "DGS10": {
        "id": "DGS10",
        "title": "Market Yield on U.S. Treasury Securities at 10-Year Constant Maturity",
        "units": "Percent",
        "frequency_short": "D",
    },
}
API_KEY = "abcdefghijklmnopqrstuvwxyz123456"
CATALOG = DATA / "seismic" / "usgs_comcat_eastasia_m4_2018_2023.csv"
INGV_QUAKEML = sorted((ROOT / "tests" / "data" / "ingest").glob("ingv_fdsnws_event_*.qml"))


def ingv_events() -> list[dict[str, Any]]:
    """The recorded INGV events: time, update time, magnitude, the ``<event>`` XML and the text row."""
    from lxml import etree
    from obspy import Catalog, read_events

    out = []
    for path in INGV_QUAKEML:
        event = read_events(str(path), format="QUAKEML")[0]
        stamps = [
            item.creation_info.creation_time
            for item in (event, *event.origins, *event.magnitudes)
            if item.creation_info is not None and item.creation_info.creation_time is not None
        ]
        text = io.StringIO()
        Catalog([event]).write(text, format="EVENTTXT")
        header, row = text.getvalue().splitlines()[:2]
        element = etree.parse(str(path)).getroot().find(".//{http://quakeml.org/xmlns/bed/1.2}event")
        out.append(
            {
                "time": event.preferred_origin().time.datetime,
                "updated": max(stamps).datetime,
                "mag": event.preferred_magnitude().mag,
                "xml": etree.tostring(element),
                "text_header": header,
                "text": row.replace("query?eventId=", "", 1),  # INGV's text answer gives the bare id
            }
        )
    return out


def _catalog_rows() -> tuple[list[str], list[dict[str, str]]]:
    text = CATALOG.read_bytes().decode("cp1252")
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def pos_to_tenv3(pos: Path, station: str) -> bytes:
    """The daily positions of a PBO .pos file in NGL's tenv3 layout (integer + fractional metres)."""
    lines = pos.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("*YYYYMMDD")) + 1
    out = [
        "site YYMMMDD yyyy.yyyy __MJD week d reflon _e0(m) __east(m) ____n0(m) _north(m) u0(m) ____up(m) _ant(m) "
        "sig_e(m) sig_n(m) sig_u(m) __corr_en __corr_eu __corr_nu _latitude(deg) _longitude(deg) __height(m)"
    ]
    for line in lines[first:]:
        f = line.split()
        if len(f) != 25:
            continue
        day = datetime.strptime(f[0], "%Y%m%d")
        decyear = day.year + (day.timetuple().tm_yday - 0.5) / 365.25
        mjd = (day - datetime(1858, 11, 17)).days
        week, dow = divmod((day - datetime(1980, 1, 6)).days, 7)
        dn, de, du = float(f[15]), float(f[16]), float(f[17])
        out.append(
            f"{station} {day:%y%b%d}".upper()
            + f" {decyear:.4f} {mjd} {week:4d} {dow} -123.9 0 {de: .6f} 4431000 {dn: .6f}"
            f" 0 {du: .6f} 0.0000 {float(f[19]):.6f} {float(f[18]):.6f} {float(f[20]):.6f} 0.0 0.0 0.0"
            f" {float(f[12]):.10f} {float(f[13]) - 360.0:.10f} {float(f[14]):.5f}"
        )
    return ("\n".join(out) + "\n").encode()


class ReplayServer:
    """Start with ``with ReplayServer() as server:``; ``server.url`` is the base URL."""

    def __init__(self, *, event_cap: int = 20_000, page_size: int | None = None) -> None:
        self.event_cap = event_cap
        self.page_size = page_size
        self.faults: dict[str, list[str]] = {}
        self.requests: list[str] = []
        self.slow_seconds = 2.0
        self.hang_seconds = 4.0
        self.drip_seconds = 0.05
        self._lock = threading.Lock()
        self._fields, self._events = _catalog_rows()
        self._ingv_events: Any = None  # loaded on the first request (ObsPy is slow to import)
        self._tenv3 = pos_to_tenv3(DATA / "geodetic" / "gnss_P156_pbo_california_2006_2015.pos", "P156")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:  # keep pytest output clean
                return

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if urlparse(r).path == path)

    # -- dispatch ------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        with self._lock:
            self.requests.append(handler.path)
            queue = self.faults.get(parsed.path, [])
            fault = queue.pop(0) if queue else None
        if fault is not None and self._fault(handler, fault):
            return
        routes = {
            "/fred/series": self._fred_series,
            "/fred/series/observations": self._fred_observations,
            "/fdsnws/event/1/query": self._fdsn,
            "/ingv/fdsnws/event/1/query": self._ingv,
            "/ogcapi/daily/items": self._water,
            "/power/daily/point": self._power,
            "/grids/sst.nc": self._grid,
        }
        if parsed.path.startswith("/ngl/"):
            status, ctype, body = self._ngl(parsed.path)
        elif parsed.path in routes:
            status, ctype, body = routes[parsed.path](query)
        else:
            status, ctype, body = 404, "text/plain", b"Not Found"
        if fault == "malformed":
            body = body[: len(body) // 3] + b"<html>proxy error</html>"
        if fault in ("cut_nolength", "stale"):
            body = body[: len(body) // 2]
            if b"\n" in body:
                body = body[: body.rindex(b"\n") + 1]
        if fault == "cut_nolength":
            self._send(handler, status, ctype, body, length=False)
            return
        if fault == "drip":
            self._drip(handler, ctype, body)
            return
        self._send(handler, status, ctype, body)

    def _fault(self, handler: BaseHTTPRequestHandler, fault: str) -> bool:
        """Answer with ``fault``; False when the fault only alters a normal answer."""
        if fault in ("500", "502", "503", "429", "403", "404"):
            headers = {"Retry-After": "0"} if fault == "429" else {}
            self._send(handler, int(fault), "text/plain", f"Error {fault}".encode(), headers)
            return True
        if fault == "429ra":
            self._send(handler, 429, "text/plain", b"Too Many Requests", {"Retry-After": "1"})
            return True
        if fault == "hang":
            time.sleep(self.hang_seconds)
            handler.close_connection = True
            return True
        if fault == "html200":
            page = b"<!DOCTYPE html><html><body><h1>Service maintenance</h1><p>Back soon.</p></body></html>"
            self._send(handler, 200, "text/html; charset=utf-8", page)
            return True
        if fault == "wrongjson":
            self._send(handler, 200, "application/json", b'[{"message": "unexpected shape"}]')
            return True
        if fault == "slow":
            time.sleep(self.slow_seconds)
            return False
        if fault == "truncate":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/octet-stream")
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            handler.wfile.write(b"partial answer")
            handler.wfile.flush()
            handler.close_connection = True
            return True
        if fault == "drop":
            handler.close_connection = True
            return True
        return False

    def _drip(self, handler: BaseHTTPRequestHandler, ctype: str, body: bytes) -> None:
        """The whole answer announced, then sent one byte at a time (for at most 15 s)."""
        stop = time.monotonic() + 15.0
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            for i in range(len(body)):
                if time.monotonic() > stop:
                    break
                handler.wfile.write(body[i : i + 1])
                handler.wfile.flush()
                time.sleep(self.drip_seconds)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up
        handler.close_connection = True

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        ctype: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        length: bool = True,
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", ctype)
            if length:
                handler.send_header("Content-Length", str(len(body)))
            else:
                handler.send_header("Connection", "close")
                handler.close_connection = True
            for key, value in (headers or {}).items():
                handler.send_header(key, value)
            handler.end_headers()
            if status != 204:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to answer

    # -- FRED ------------------------------------------------------------------------------
    def _fred_key(self, query: dict[str, str]) -> tuple[int, str, bytes] | None:
        if query.get("api_key") != API_KEY:
            body = {
                "error_code": 400,
                "error_message": "Bad Request.  The value for variable api_key is not registered.",
            }
            return 400, "application/json", json.dumps(body).encode()
        if query.get("series_id") not in FRED_FILES:
            body = {"error_code": 400, "error_message": "Bad Request.  The series does not exist."}
            return 400, "application/json", json.dumps(body).encode()
        return None

    def _fred_series(self, query: dict[str, str]) -> tuple[int, str, bytes]:
        refused = self._fred_key(query)
        if refused:
            return refused
        return 200, "application/json", json.dumps({"seriess": [FRED_INFO[query["series_id"]]]}).encode()

    def _fred_observations(self, query: dict[str, str]) -> tuple[int, str, bytes]:
        refused = self._fred_key(query)
        if refused:
            return refused
        start = query.get("observation_start", "1776-07-04")
        rows = list(csv.DictReader(FRED_FILES[query["series_id"]].open()))
        observations = [
            {
                "realtime_start": "2026-01-02",
                "realtime_end": "2026-01-02",
                "date": r["date"],
                "value": r["value"] if r["value"] != "" else ".",
            }
            for r in rows
            if r["date"] >= start
        ]
        return 200, "application/json", json.dumps({"count": len(observations), "observations": observations}).encode()

    # -- FDSN ------------------------------------------------------------------------------
    def _fdsn(self, query: dict[str, str]) -> tuple[int, str, bytes]:
        def stamp(text: str) -> datetime:
            return datetime.fromisoformat(text.replace("Z", ""))

        try:
            start, end = stamp(query["starttime"]), stamp(query["endtime"])
        except (KeyError, ValueError):
            return 400, "text/plain", b"Error 400: Bad Request\n\nBad starttime or endtime.\n"
        minmag = float(query.get("minmagnitude", "-10"))
        updated = stamp(query["updatedafter"]) if "updatedafter" in query else None
        box = [
            float(query.get(k, d))
            for k, d in (("minlatitude", -90), ("maxlatitude", 90), ("minlongitude", -180), ("maxlongitude", 180))
        ]
        chosen = []
        for row in self._events:
            t = stamp(row["time"])
            if not start <= t < end or float(row["mag"]) < minmag:
                continue
            if not (box[0] <= float(row["latitude"]) <= box[1] and box[2] <= float(row["longitude"]) <= box[3]):
                continue
            if updated is not None and stamp(row["updated"]) <= updated:
                continue
            chosen.append(row)
        if len(chosen) > self.event_cap:
            message = (
                f"Error 400: Bad Request\n\n{len(chosen)} matching events exceeds search limit of "
                f"{self.event_cap}. Modify the search to match fewer events.\n"
            )
            return 400, "text/plain", message.encode()
        if not chosen:
            return 204, "text/plain", b""
        chosen.sort(key=lambda r: r["time"])
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self._fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(chosen)
        return 200, "text/csv", out.getvalue().encode("utf-8")

    def _ingv(self, query: dict[str, str]) -> tuple[int, str, bytes]:
        with self._lock:
            if self._ingv_events is None:
                self._ingv_events = ingv_events()
        try:
            start = datetime.fromisoformat(query["starttime"])
            end = datetime.fromisoformat(query["endtime"])
            updated = datetime.fromisoformat(query["updatedafter"]) if "updatedafter" in query else None
        except (KeyError, ValueError):
            return 400, "text/plain", b"Error 400: Bad Request\n\nBad starttime, endtime or updatedafter.\n"
        if query.get("format") not in ("xml", "text"):
            return 400, "text/plain", b"Error 400: Bad Request\n\nformat must be xml or text here.\n"
        minmag = float(query.get("minmagnitude", "-10"))
        chosen = [
            e
            for e in self._ingv_events
            if start <= e["time"] < end and e["mag"] >= minmag and (updated is None or e["updated"] > updated)
        ]
        if not chosen:
            return 204, "text/plain", b""
        if query["format"] == "text":
            body = "\n".join([chosen[0]["text_header"], *(e["text"] for e in chosen)]) + "\n"
            return 200, "text/plain; charset=utf-8", body.encode()
        doc = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<q:quakeml xmlns:q="http://quakeml.org/xmlns/quakeml/1.2" '
            b'xmlns="http://quakeml.org/xmlns/bed/1.2" xmlns:ingv="http://webservices.ingv.it/fdsnws/event/1">\n'
            b'  <eventParameters publicID="smi:webservices.ingv.it/fdsnws/event/1/query">\n'
            + b"".join(e["xml"] for e in chosen)
            + b"  </eventParameters>\n</q:quakeml>\n"
        )
        return 200, "application/xml", doc

    # -- USGS water ------------------------------------------------------------------------
    def _water(self, query: dict[str, str]) -> tuple[int, str, bytes]:
        site = query.get("monitoring_location_id", "")
        if site != "USGS-02177000":
            return (
                404,
                "application/json",
                json.dumps({"code": "NotFound", "description": f"no location {site}"}).encode(),
            )
        lines = [
            line.split("\t")
            for line in (DATA / "hydro" / "usgs_nwis_rdb_02177000_chattooga_2012.rdb").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        header, rows = lines[0], lines[2:]
        value_col = next(i for i, h in enumerate(header) if h.endswith("_00060_00003"))
        first, last = query.get("time", "1900-01-01/2100-01-01").split("/")
        features = [
            {
                "type": "Feature",
                "id": f"{r[2]}-{site}",
                "properties": {
                    "parameter_code": "00060",
                    "statistic_id": "00003",
                    "time": r[2],
                    "value": r[value_col],
                    "unit_of_measure": "ft^3/s",
                    "approval_status": "Approved" if "A" in r[value_col + 1] else "Provisional",
                    "monitoring_location_id": site,
                },
                "geometry": {"type": "Point", "coordinates": [-83.3513, 34.8401]},
            }
            for r in rows
            if first <= r[2] <= last
        ]
        limit = int(query.get("limit", "10000")) if self.page_size is None else self.page_size
        offset = int(query.get("cursor", "0"))
        page = features[offset : offset + limit]
        links = [{"rel": "self", "href": f"{self.url}/ogcapi/daily/items"}]
        if offset + limit < len(features):
            nxt = (
                f"{self.url}/ogcapi/daily/items?monitoring_location_id={site}&time={first}/{last}"
                f"&f=json&limit={limit}&cursor={offset + limit}"
            )
            links.append({"rel": "next", "href": nxt, "type": "application/geo+json"})
        doc = {"type": "FeatureCollection", "features": page, "numberReturned": len(page), "links": links}
        return 200, "application/geo+json", json.dumps(doc).encode()

    # -- NASA POWER ------------------------------------------------------------------------
    def _power(self, query: dict[str, str]) -> tuple[int, str, bytes]:
        try:
            start, end = datetime.strptime(query["start"], "%Y%m%d"), datetime.strptime(query["end"], "%Y%m%d")
            lat, lon = float(query["latitude"]), float(query["longitude"])
        except (KeyError, ValueError):
            return (
                422,
                "application/json",
                json.dumps({"messages": ["start, end, latitude, longitude are required"]}).encode(),
            )
        flow = {}
        for line in (DATA / "hydro" / "usgs_01491000_choptank_daily_flow_cms.txt").read_text().splitlines()[1:]:
            day, value = line.split("\t")
            flow[datetime.strptime(day, "%m/%d/%Y")] = float(value)
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        values = {f"{d:%Y%m%d}": flow.get(d, -999.0) for d in days}
        doc = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat, 10.0]},
            "properties": {"parameter": {"PRECTOTCORR": values}},
            "header": {
                "title": "NASA/POWER Source Native Resolution Daily Data",
                "fill_value": -999.0,
                "start": query["start"],
                "end": query["end"],
            },
            "messages": [],
            "parameters": {"PRECTOTCORR": {"units": "mm/day", "longname": "Precipitation Corrected"}},
        }
        return 200, "application/json", json.dumps(doc).encode()

    # -- files -----------------------------------------------------------------------------
    def _ngl(self, path: str) -> tuple[int, str, bytes]:
        if path != "/ngl/P156.tenv3":
            return 404, "text/plain", b"Not Found"
        return 200, "text/plain", self._tenv3

    def _grid(self, _query: dict[str, str]) -> tuple[int, str, bytes]:
        return 200, "application/x-netcdf", (DATA / "satellite" / "noaa_ersstv5_sst_monthly_2010_2020.nc").read_bytes()
