"""The search page in a real browser: Playwright driving Debian's Chromium against `cbir serve`."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from benchmarks.web import CHROMIUM_ARGS
from benchmarks.web_index import LABELS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser(chromium):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    # Listening for file choosers turns Chromium's interception on; Playwright sends that
    # without waiting for a reply, so doing it only inside `expect_file_chooser` races the
    # key press that opens the chooser (a known Playwright/Puppeteer race). Turn it on early.
    page.on("filechooser", lambda chooser: None)
    yield page
    context.close()


def data_file(web_index, split: str, label: str, n: int) -> Path:
    return web_index.home.parent / "data" / split / label / f"{n:03d}.png"


def grid_items(page, column: int | None = None):
    scope = "#results .column" + (f":nth-child({column})" if column else "")
    return page.locator(f"{scope} .grid > li")


def ids_of(items) -> list[str]:
    """The doc ids of grid items, from their links' data-id (the page shows file names)."""
    return items.locator("a").evaluate_all("links => links.map(a => a.dataset.id)")


def test_search_by_upload_side_by_side_and_by_clicking_a_result(
    page, live_server, web_index, tmp_path
):
    from playwright.sync_api import expect

    page.goto(live_server)
    expect(page.locator("#drop-zone")).to_be_visible()
    # Chromium ignores input before the first paint (paint holding): let the page settle.
    page.wait_for_load_state("networkidle")

    # Upload through the drop zone, which is a button opening the file picker (keyboard: Enter).
    page.locator("#drop-zone").focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(data_file(web_index, "test", "green", 1)))
    expect(grid_items(page)).to_have_count(10)
    expect(page.locator("#preview")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("10 results for CNN")
    labels = grid_items(page).locator(".label").all_inner_texts()
    assert all(text.startswith("green") for text in labels)
    scores = [float(s.split()[-1]) for s in grid_items(page).locator(".score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and grid_items(page).first.locator(
        ".score"
    ).inner_text().startswith("cosine ")
    # CIFAR-sized thumbnails are upscaled with crisp pixels.
    rendering = (
        grid_items(page)
        .first.locator("img")
        .evaluate("img => getComputedStyle(img).imageRendering")
    )
    assert rendering == "pixelated"

    # Side by side: BoVW and CNN for the same query, the overlap marked.
    page.get_by_label("BoVW and CNN side by side").check()
    expect(page.locator("#results .columns.side .column")).to_have_count(2)
    expect(grid_items(page, 1)).to_have_count(10)
    expect(grid_items(page, 2)).to_have_count(10)
    expect(page.locator("#results .column h2").first).to_contain_text("BoVW")
    bovw = ids_of(grid_items(page, 1))
    cnn = ids_of(grid_items(page, 2))
    both = set(bovw) & set(cnn)
    assert 0 < len(both) < 10  # the two test methods rank differently
    expect(page.locator("#status")).to_contain_text(f"{len(both)} of 10 results in both lists")
    for column, ids in ((1, bovw), (2, cnn)):
        marked = grid_items(page, column).locator(".both-badge")
        expect(marked).to_have_count(len(both))
        flags = [
            "both" in (c or "")
            for c in grid_items(page, column).evaluate_all("items => items.map(i => i.className)")
        ]
        assert flags == [i in both for i in ids]

    # Click a result: a search by that id, with a shareable URL.
    clicked = grid_items(page, 2).nth(3)
    clicked_id = clicked.locator("a").get_attribute("data-id")
    clicked.locator("a").click()
    expect(page).to_have_url(re.compile(r"\?id=" + re.escape(clicked_id.replace("/", "%2F"))))
    expect(page.locator("#query-text")).to_contain_text(f"Image {clicked_id}")
    expect(page.locator("#query-text")).to_contain_text(
        "in the index (left out of its own results)"
    )
    expect(grid_items(page, 1)).to_have_count(10)
    assert clicked_id not in ids_of(grid_items(page, 1))
    # A labelled query: same-class results marked, P@k and AP shown.
    expect(page.locator("#results .quality").first).to_contain_text("P@10")
    expect(page.locator("#results .quality").first).to_contain_text("AP@10")
    assert grid_items(page, 1).locator(".same-badge").count() > 0
    assert "view=side" in page.url and "k=10" in page.url

    page.screenshot(path=str(tmp_path / "search-page.png"), full_page=True)
    assert (tmp_path / "search-page.png").stat().st_size > 10_000

    # The shareable URL runs the same search when opened afresh.
    shared = page.context.new_page()
    shared.goto(page.url)
    expect(shared.locator("#query-text")).to_contain_text(f"Image {clicked_id}")
    expect(grid_items(shared, 2)).to_have_count(10)
    shared.close()

    # Back goes to the uploaded query's URL (no id); forward reruns the search by id.
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"id="))
    page.go_forward()
    expect(page.locator("#query-text")).to_contain_text(f"Image {clicked_id}")


def test_drag_and_drop_k_and_readable_errors(page, live_server, web_index):
    from playwright.sync_api import expect

    page.goto(f"{live_server}?method=bovw&k=25")
    expect(page.locator("#method")).to_have_value("bovw")
    expect(page.locator("#k")).to_have_value("25")
    png = data_file(web_index, "test", "yellow", 2).read_bytes()
    drop(page, png, "query.png", "image/png")
    expect(grid_items(page)).to_have_count(25)
    expect(page.locator("#status")).to_contain_text("25 results for BoVW")

    page.select_option("#method", "fusion")
    expect(grid_items(page).first.locator(".score")).to_contain_text("RRF score")

    drop(page, b"this is not a picture", "notes.png", "image/png")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("not an image (format not recognised)")

    page.goto(f"{live_server}?id=test/nothing/000.png")
    expect(page.locator("#error")).to_contain_text("no image with id 'test/nothing/000.png'")
    expect(page.locator("#query-info")).to_be_hidden()
    expect(page.locator("#results .grid")).to_have_count(0)


def drop(page, data: bytes, name: str, mime: str) -> None:
    """Drop a file on the drop zone, as a drag from the desktop does."""
    page.evaluate(
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            const zone = document.getElementById("drop-zone");
            zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""",
        [base64.b64encode(data).decode(), name, mime],
    )


def test_phone_width_keyboard_and_about_panel(browser, live_server):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(f"{live_server}?id=test/red/000.png&view=side&k=25")
        expect(grid_items(page, 2)).to_have_count(25)
        # Nothing wider than the screen: no sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        # Results are links reachable by keyboard; Enter on one searches with it.
        first = grid_items(page, 1).first.locator("a")
        target = first.get_attribute("data-id")
        first.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#query-text")).to_contain_text(f"Image {target}")
        # The about panel opens from the header link and tells what the index holds.
        expect(page.locator("#about")).not_to_have_attribute("open", "")
        page.get_by_role("link", name="About this index").click()
        expect(page.locator("#about")).to_have_attribute("open", "")
        expect(page.locator("#about")).to_contain_text(f"{len(LABELS) * 20} indexed images")
        expect(page.locator("#about")).to_contain_text("weighted-moments")
    finally:
        context.close()


def test_the_start_page_shows_a_sample_to_search_with(page, live_server):
    from playwright.sync_api import expect

    page.goto(live_server)
    samples = page.locator("#sample-grid > li")
    expect(page.locator("#sample")).to_be_visible()
    expect(samples).to_have_count(24)
    expect(page.locator("#sample-count")).to_contain_text(f"24 of {len(LABELS) * 20} images")
    first = ids_of(samples)
    # Thumbnails only: every grid image asks for a bounded size, never the original.
    sources = samples.locator("img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
    assert all(src.endswith("?size=256") for src in sources)
    expect(samples.first.locator(".file-name")).to_have_text(first[0].rsplit("/", 1)[1])
    expect(samples.first.locator(".file-meta")).to_contain_text("32×32")
    # Reshuffle draws others (80 images: the same 24 in the same order is out of reach).
    page.get_by_role("button", name="Show others").click()
    expect(samples.first).not_to_have_attribute("data-id", first[0])
    page.wait_for_function(
        "ids => [...document.querySelectorAll('#sample-grid a')].map(a => a.dataset.id).join() != ids",
        arg=",".join(first),
    )
    # Keyboard: Enter on a sample searches with it; the sample gives way to the results.
    target = samples.nth(2).locator("a")
    target_id = target.get_attribute("data-id")
    target.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#query-text")).to_contain_text(f"Image {target_id}")
    expect(grid_items(page)).to_have_count(10)
    expect(page.locator("#sample")).to_be_hidden()
    result_sources = (
        grid_items(page).locator("img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
    )
    assert all(src.endswith("?size=256") for src in result_sources)
    expect(grid_items(page).first.locator(".file-meta")).to_contain_text("KB")
    # Back to the start page: the sample is there again.
    page.go_back()
    expect(page.locator("#sample")).to_be_visible()


def figure_drawn(page, image_id: str) -> list[int]:
    """Waits for the dialog's figure `image_id` to load; the alpha of its top corners and of
    its bottom right (the blank below the caption)."""
    page.wait_for_function(
        f"() => {{ const i = document.getElementById('{image_id}'); "
        "return i.getAttribute('src') && i.complete && i.naturalWidth > 0; }"
    )
    return page.locator(f"#{image_id}").evaluate(
        """img => {
            const c = document.createElement("canvas");
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const ctx = c.getContext("2d");
            ctx.drawImage(img, 0, 0);
            return [[3, 3], [c.width - 3, 3], [c.width - 3, c.height - 3]]
                .map(([x, y]) => ctx.getImageData(x, y, 1, 1).data[3]);
        }"""
    )


@pytest.fixture(scope="module")
def copies_server(tmp_path_factory):
    """`cbir serve` on a small copy-detection folder indexed with local features (so `+gv`), a
    real BoVW field (photo recipe, so "why" shows shared words) and a thumbnail `cnn`."""
    import os

    from benchmarks.copydays import write_copy_folder
    from benchmarks.server import cbir_serve
    from benchmarks.toy_extractors import ThumbnailExtractor
    from cbir.core.config import Settings
    from cbir.stages.index import index_dataset
    from features.bovw import BovwExtractor
    from features.bovw_defaults import recipe_params
    from indexing.datasets import FolderDataset
    from indexing.local_store import LocalOptions

    root = tmp_path_factory.mktemp("copies-web")
    data = write_copy_folder(
        root / "data", originals=("coffee", "rocket"), transforms=("rot90", "crop"), distractors=8
    )
    images = [FolderDataset(data).image(r) for r in FolderDataset(data).records("train")]
    bovw = BovwExtractor(
        **recipe_params(
            "photo", {"vocabulary_size": 64, "pca_dim": 0, "colour": False, "kmeans_init": 1}
        )
    )
    models = {
        "bovw": bovw.fit(images).save(root / "models" / "bovw"),
        "cnn": ThumbnailExtractor(4).fit(images).save(root / "models" / "cnn"),
    }
    settings = Settings.resolve(env={}, home=root / "home")
    index_dataset(
        settings, dataset="folder", data=str(data), methods=tuple(models), models=models, ray=None,
        show_progress=False, local=LocalOptions(max_side=320, min_side=160, max_keypoints=150),
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    env.update({"CBIR_HOME": str(settings.home), "CBIR_STORE": settings.store})
    with cbir_serve(env=env, args=["--threads", "4"]) as url:
        yield url, data


def test_why_it_matched_opens_the_inlier_figure(page, copies_server):
    from playwright.sync_api import expect

    url, data = copies_server
    query = "test/coffee/rot90.jpg"
    page.goto(f"{url}?id={query}&method=cnn%2Bgv&k=10")
    expect(grid_items(page)).to_have_count(10)
    top = grid_items(page).first
    result = top.locator("a").get_attribute("data-id")
    assert result == "train/coffee/original.jpg"
    # The inlier count on the hit is the API's, from the search and from /api/why.
    searched = page.request.post(
        f"{url}/api/search", data={"id": query, "method": "cnn+gv", "k": 10}
    ).json()["results"][0]["verification"]
    why = page.request.get(f"{url}/api/why?query={query}&result={result}&format=json").json()
    assert searched["inliers"] == why["inliers"] >= 20
    expect(top.locator(".inliers")).to_contain_text(f"{why['inliers']} inliers")
    # Unverified hits (distractors) have neither a count nor a "why" button.
    verified = grid_items(page).locator(".inliers").count()
    expect(grid_items(page).locator(".why-button")).to_have_count(verified)
    assert 1 <= verified < 10
    scores = grid_items(page).locator(".score").all_inner_texts()
    assert scores == ["verified"] * verified + ["not verified"] * (10 - verified)

    button = top.get_by_role("button", name="Why original.jpg matched")
    button.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Why it matched")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"{why['inliers']} inliers of {why['matches']} matches")
    expect(page.locator("#why-words")).to_be_hidden()  # a cnn hit: no visual words to show
    # The photos are drawn inside the figure (opaque pixels in each), not only the lines.
    alphas = figure_drawn(page, "why-image")
    expect(page.locator("#why-status")).to_have_text("")
    assert alphas[:2] == [255, 255] and alphas[2] == 0  # query, result; blank below the caption
    expect(page.locator("#why-json")).to_have_attribute("href", re.compile("format=json"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()

    # An uploaded query: counts shown, no "why" (it needs a doc id), and the page says so.
    drop(page, (data / "test" / "rocket" / "crop.jpg").read_bytes(), "crop.jpg", "image/jpeg")
    expect(page.locator("#query-text")).to_contain_text("Uploaded image crop.jpg")
    expect(grid_items(page).first.locator(".inliers")).to_contain_text("inliers")
    expect(page.locator(".why-button")).to_have_count(0)
    expect(page.locator("#results")).to_contain_text("Why it matched is drawn for a query")


def test_why_it_matched_shows_the_shared_visual_words(page, copies_server):
    from playwright.sync_api import expect

    url, _ = copies_server
    query = "test/coffee/rot90.jpg"
    # BoVW alone: no verification, so every hit explains itself by its shared words only.
    page.goto(f"{url}?id={query}&method=bovw&k=10")
    expect(grid_items(page).first).to_be_visible()
    hits = grid_items(page).count()
    assert hits >= 5
    expect(grid_items(page).locator(".why-button")).to_have_count(hits)
    top = grid_items(page).first
    result = top.locator("a").get_attribute("data-id")
    words = page.request.get(
        f"{url}/api/why?query={query}&result={result}&kind=words&format=json"
    ).json()
    assert words["shared_words"] >= 5 and words["method"] == "bovw"
    top.locator(".why-button").click()
    dialog = page.get_by_role("dialog", name="Why it matched")
    expect(dialog).to_be_visible()
    expect(page.locator("#why-inliers")).to_be_hidden()
    section = page.locator("#why-words")
    expect(section).to_be_visible()
    expect(section).to_contain_text(
        f"share {words['shared_words']} of the query's {words['query_words']} visual words"
    )
    assert figure_drawn(page, "why-words-image") == [255, 255, 0]  # query, result, caption
    expect(page.locator("#why-words-status")).to_have_text("")
    expect(page.locator("#why-words-json")).to_have_attribute("href", re.compile("kind=words"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # Fusion with verification: a verified hit shows its inliers and its shared words.
    page.goto(f"{url}?id={query}&method=fusion%2Bgv&k=10")
    expect(grid_items(page)).to_have_count(10)
    expect(grid_items(page).locator(".why-button")).to_have_count(10)  # verified or not
    top = grid_items(page).first
    assert top.locator("a").get_attribute("data-id") == "train/coffee/original.jpg"
    top.locator(".why-button").click()
    expect(page.locator("#why-inliers")).to_be_visible()
    expect(page.locator("#why-text")).to_contain_text("inliers of")
    expect(page.locator("#why-words")).to_be_visible()
    expect(page.locator("#why-words-text")).to_contain_text("visual words")
    assert figure_drawn(page, "why-image")[:2] == [255, 255]
    assert figure_drawn(page, "why-words-image")[:2] == [255, 255]
