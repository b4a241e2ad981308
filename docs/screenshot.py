"""Take the README's screenshot of the search page (docs/screenshot.png) with Playwright + Chromium.

    python docs/screenshot.py                  # against the configured index (CBIR_HOME / CBIR_STORE)
    python docs/screenshot.py --synthetic      # against the generated test index (from a checkout)
    python docs/screenshot.py --url http://127.0.0.1:5000/ --query test/cat/0042

Starts `cbir serve` on a free loopback port unless --url is given, opens a side-by-side
search by id (default: the first test-split image of the index's dataset) and saves the page.
Needs Debian's Chromium (apt-get install chromium) or --chromium PATH.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def take_screenshot(
    url: str,
    query: str,
    out: Path,
    *,
    k: int = 10,
    view: str = "side",
    method: str = "cnn",
    chromium: str = "/usr/bin/chromium",
    width: int = 1200,
    height: int = 900,
) -> Path:
    """Open `url` searching by `query` and save a full-page PNG to `out`."""
    from playwright.sync_api import expect, sync_playwright

    from benchmarks.web import CHROMIUM_ARGS

    params = {"id": query, "method": method, "k": k, **({"view": "side"} if view == "side" else {})}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"{url}?{urlencode(params)}")
            expect(page.locator("#results .grid > li").first).to_be_visible(timeout=60_000)
            page.wait_for_function("[...document.images].every(img => img.complete)")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    return out


def first_query(env: dict[str, str] | None) -> str:
    """The first test-split image of the index's dataset, else the first indexed id."""
    from cbir.core.config import Settings
    from indexing.search import SearchService

    service = SearchService.open(Settings.resolve(env=env))
    try:
        if service.dataset is not None:
            tests = service.dataset.records("test")
            if tests:
                return tests[0].doc_id
        return sorted(service.store.ids_with(service.base_methods[0]))[0]
    finally:
        service.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start cbir serve)")
    parser.add_argument("--synthetic", action="store_true", help="serve the generated test index")
    parser.add_argument("--query", help="doc id to search with (default: first test image)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--view", choices=("side", "single"), default="side")
    parser.add_argument("--method", default="cnn")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    options = {"k": args.k, "view": args.view, "method": args.method, "chromium": args.chromium}
    if args.url:
        if not args.query:
            parser.error("--url needs --query")
        take_screenshot(args.url, args.query, args.out, **options)
    else:
        from benchmarks.server import cbir_serve

        with tempfile.TemporaryDirectory() as tmp:
            env = None
            if args.synthetic:
                from benchmarks.web import synthetic_env

                env = synthetic_env(Path(tmp))
            query = args.query or first_query(env)
            with cbir_serve(env=env) as url:
                take_screenshot(url, query, args.out, **options)
    print(f"screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
