"""Screenshots of the web console for the docs: ``docs/console/*.png``.

Starts ``vecdb serve`` (this checkout) on free ports over a temporary data directory with an admin and a
read-only key, fills two small demo collections, sends a few requests so that the live view has numbers,
then drives Debian's ``/usr/bin/chromium`` through Playwright (never a downloaded browser) and saves:

- ``collections.png``: ``/console``, the collections list;
- ``collection.png``: ``/console/collections/notes`` with a text search's hits;
- ``read-only.png``: the same page with the read-only key (no write buttons).

Run: ``python scripts/console_screenshots.py [--out docs/console]`` (needs the dev dependencies and
chromium: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN, READER = "demo-admin", "demo-reader"

NOTES = {
    "handbook/onboarding.md": [
        "New employees get a laptop and an access badge on their first day.",
        "The onboarding buddy answers questions during the first two weeks.",
        "Expense reports are filed in the finance portal before the 5th of each month.",
    ],
    "handbook/security.md": [
        "Rotate API keys every ninety days and never paste them into chat.",
        "Laptops must use full-disk encryption and lock after five idle minutes.",
    ],
    "ops/runbook.md": [
        "If the search latency p95 rises above 50 ms, check whether an index rebuild is running.",
        "Snapshots are taken nightly and kept for fourteen days.",
        "Restore a snapshot into a new collection, verify it, then switch the alias.",
    ],
    "faq.md": [
        "The office is closed on public holidays.",
        "Parking permits are requested from the facilities team.",
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vecdb serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("vecdb serve was not ready within 60 s")


def seed(url: str) -> None:
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=60) as http:
        http.post(
            "/v1/collections", json={"name": "notes", "embedding": {}, "max_records": 100_000}
        ).raise_for_status()
        ids, texts, sources, metadatas = [], [], [], []
        for source, chunks in NOTES.items():
            for i, text in enumerate(chunks):
                ids.append(f"{source.rsplit('/', 1)[-1].removesuffix('.md')}-{i}")
                texts.append(text)
                sources.append(source)
                metadatas.append({"team": source.split("/")[0].removesuffix(".md"), "chunk": i})
        body = {"ids": ids, "texts": texts, "sources": sources, "metadatas": metadatas}
        http.post("/v1/collections/notes/upsert", json=body).raise_for_status()
        http.post(
            "/v1/collections", json={"name": "images", "dim": 64, "metric": "l2", "index": {"type": "hnsw"}}
        )
        vectors = [[((i * 7 + j * 3) % 17) / 17.0 for j in range(64)] for i in range(300)]
        http.post(
            "/v1/collections/images/upsert",
            json={"ids": [f"img-{i:04d}" for i in range(300)], "vectors": vectors},
        ).raise_for_status()
        http.post("/v1/collections/notes/snapshots", json={"name": "nightly-2026-12-04"}).raise_for_status()
        for query in ("how do I restore a backup", "api key rotation", "first day laptop"):
            http.post("/v1/collections/notes/search", json={"texts": [query], "k": 5}).raise_for_status()


def open_with_key(page: Page, url: str, key: str) -> None:
    page.goto(url)
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")


def keep_busy(url: str, page: Page, seconds: float = 5.0) -> None:
    """Searches from another thread while the page scrapes /metrics twice, so that its rates are not 0."""

    def load() -> None:
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {READER}"}, timeout=60) as http:
            deadline = time.monotonic() + seconds
            i = 0
            while time.monotonic() < deadline:
                http.post("/v1/collections/notes/search", json={"texts": [f"snapshot retention {i}"], "k": 5})
                http.post("/v1/collections/images/search", json={"vectors": [[0.1 * (i % 9)] * 64], "k": 10})
                i += 1

    worker = threading.Thread(target=load)
    worker.start()
    page.wait_for_timeout(seconds * 1000)
    worker.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rest, grpc = free_port(), free_port()
    url = f"http://127.0.0.1:{rest}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECDB_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "vecdb", "serve", "--data-dir", f"{tmp}/data"]
        command += ["--rest-port", str(rest), "--grpc-port", str(grpc), "--api-key", ADMIN]
        command += ["--api-key", f"{READER}:read"]
        proc = subprocess.Popen(
            command, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(url, proc)
            seed(url)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                open_with_key(page, f"{url}/console", ADMIN)
                expect(page.locator('tr[data-collection="notes"]')).to_be_visible()
                keep_busy(url, page)
                page.screenshot(path=args.out / "collections.png", full_page=True)

                page.goto(f"{url}/console/collections/notes")
                page.fill(
                    '#search-form textarea[name="query"]', "how do I get a collection back from a backup?"
                )
                page.fill('#search-form input[name="k"]', "3")
                page.click('#search-form button[type="submit"]')
                expect(page.locator("#search-results tr.hit").first).to_be_visible()
                keep_busy(url, page)
                page.screenshot(path=args.out / "collection.png", full_page=True)

                reader = browser.new_page(viewport={"width": 1280, "height": 800})
                open_with_key(reader, f"{url}/console/collections/notes", READER)
                expect(reader.locator("#records tr.record").first).to_be_visible()
                reader.wait_for_timeout(2500)
                reader.screenshot(path=args.out / "read-only.png")
                browser.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    for name in ("collections.png", "collection.png", "read-only.png"):
        print(args.out / name, (args.out / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
