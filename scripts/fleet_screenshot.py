"""Make docs/img/fleet-problems.png: the problems page of ``kdx serve`` on real lab dumps.

The cached lab dumps (``kdx lab run``) of every scenario are uploaded with ``FleetClient``
to a ``kdx serve`` app on a free loopback port (the embedded fleet in a temporary
directory), analysed by its workers, and the problems page is photographed by headless
Chromium. Usage: ``python scripts/fleet_screenshot.py [OUT.png]``.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from kdx.fleet.client import FleetClient
from kdx.fleet.embedded import open_fleet
from kdx.fleet.service import FleetConfig
from kdx.fleet.web import create_app
from kdx.lab.cache import default_cache

TOKEN = "screenshot"


def lab_dumps() -> list[Path]:
    """The compressed kdump dumps of every cached lab run (one format per scenario)."""
    runs = default_cache() / "runs"
    return sorted(p for p in runs.glob("*/*-kdump-kdump-zlib/vmcore") if p.is_file())


def serve(app: object) -> tuple[str, uvicorn.Server]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def photograph(url: str, out: Path) -> None:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
                "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(
        executable_path="/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url + "/problems?sort=count")
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main(out: Path) -> int:
    dumps = lab_dumps()
    if not dumps:
        print("no lab dumps cached: run 'kdx lab run SCENARIO' first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="kdx-shot-") as tmp:
        fleet = open_fleet(FleetConfig(data=Path(tmp), workers=2))
        url, server = serve(create_app(fleet, tokens=frozenset({TOKEN})))
        try:
            with FleetClient(url, TOKEN) as client:
                ids = [client.upload(p, labels={"team": "lab"}).dump["id"] for p in dumps]
                while any(client.dump(i)["state"] not in ("analysed", "failed") for i in ids):
                    time.sleep(1)
            photograph(url, out)
        finally:
            server.should_exit = True
            fleet.close()
    print(f"{out}: the problems page of {len(dumps)} lab dumps")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/fleet-problems.png")))
