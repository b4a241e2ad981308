"""The search page as HTML: controls, the about panel, the latest evaluation, a missing index."""

from __future__ import annotations

import json
import os
import re

from app import create_app
from benchmarks.web_index import LABELS, TRAIN_PER_LABEL
from cbir.core.config import Settings


def summary(finished: str | None, bovw: float, cnn: float) -> dict:
    measures = lambda m: {"map_cut_100": m / 50, "map_minRk_100": m, "P_10": 0.5}  # noqa: E731
    return {
        "dataset": "cifar10",
        "queries": 10000,
        "documents": 50000,
        "k": 100,
        "exact": True,
        **({"finished": finished} if finished else {}),
        "methods": {"bovw": {"measures": measures(bovw)}, "cnn": {"measures": measures(cnn)}},
    }


def write_summary(runs, name: str, content, mtime: float | None = None):
    path = runs / name / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def client_config(html: str) -> dict:
    match = re.search(
        r'<script type="application/json" id="client-config">(.*?)</script>', html, re.S
    )
    return json.loads(match.group(1))


def test_page_has_the_controls_and_serves_its_assets_locally(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert (
        '<label for="method">Method</label>' in html
        and '<label for="k">Results (k)</label>' in html
    )
    for option in ('value="bovw"', 'value="cnn"', 'value="fusion"'):
        assert option in html
    assert [int(k) for k in re.findall(r'<option value="(\d+)"', html)] == [10, 25, 50, 100]
    assert 'id="drop-zone"' in html and 'type="file"' in html and 'aria-live="polite"' in html
    assert "BoVW and CNN side by side" in html
    # Everything is served from this server: no CDN.
    for url in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert url.startswith("/"), url
    for asset in ("/static/style.css", "/static/search.js"):
        assert client.get(asset).status_code == 200
    config = client_config(html)
    assert config["ready"] is True and config["side"] == ["bovw", "cnn"]
    assert config["defaultMethod"] == "cnn" and config["kChoices"] == [10, 25, 50, 100]
    assert config["maxUploadBytes"] == 10 * 1024 * 1024 and config["searchUrl"] == "/api/search"


def test_about_panel_shows_index_size_methods_and_models(client):
    html = client.get("/").get_data(as_text=True)
    about = html[html.index('id="about"') :]
    assert f"<strong>{len(LABELS) * TRAIN_PER_LABEL}</strong> indexed images" in about
    assert "<strong>folder</strong> dataset" in about and f"{len(LABELS)} labels" in about
    assert re.search(r"<th scope=\"row\">BoVW</th><td>colour-moments</td><td>6</td>", about)
    assert re.search(r"<th scope=\"row\">CNN</th><td>weighted-moments</td><td>6</td>", about)
    assert "reciprocal rank fusion: its scores are RRF scores, not cosines" in about
    assert "No evaluation yet" in about


def test_about_panel_shows_the_latest_evaluation_summary(client, app):
    runs = app.config["CBIR_SETTINGS"].runs_dir
    write_summary(runs, "older", summary("2026-01-01T10:00:00+00:00", 0.111, 0.222))
    write_summary(runs, "newest", summary("2026-03-01T10:00:00Z", 0.2451, 0.6012))
    # Written last, but finished earlier: the `finished` field decides, not the file time.
    write_summary(runs, "middle", summary("2026-02-01T10:00:00", 0.333, 0.444))
    write_summary(runs, "broken", "{not json")
    html = client.get("/").get_data(as_text=True)
    table = html[
        html.index('id="evaluation"') : html.index("</table>", html.index('id="evaluation"'))
    ]
    assert "MAP@100" in table and "map_cut_100" in table and "map_minRk_100" in table
    assert "normalised by min(R,&nbsp;100)" in table
    rows = re.findall(r'<th scope="row">(\w+)</th>\s*<td>([\d.]+)</td>\s*<td>([\d.]+)</td>', table)
    assert rows == [("BoVW", "0.0049", "0.2451"), ("CNN", "0.0120", "0.6012")]
    assert "Run <code>newest</code>" in html and "10,000 queries on cifar10" in html
    assert "0.02 on CIFAR-10" in html
    stats = client.get("/api/stats").json
    assert stats["evaluation"]["run"] == "newest"
    assert stats["evaluation"]["methods"]["cnn"]["measures"]["map_minRk_100"] == 0.6012


def test_without_finished_times_the_newest_file_wins(client, app):
    runs = app.config["CBIR_SETTINGS"].runs_dir
    write_summary(runs, "a", summary(None, 0.1, 0.2), mtime=1_000_000)
    write_summary(runs, "b", summary(None, 0.3, 0.4), mtime=2_000_000)
    assert client.get("/api/stats").json["evaluation"]["run"] == "b"


def test_odd_values_in_a_summary_do_not_break_the_page(client, app):
    runs = app.config["CBIR_SETTINGS"].runs_dir
    odd = {
        "queries": "many",
        "k": "100",
        "methods": {"bovw": {"measures": {"map_cut_100": "high"}}, "x": 3},
    }
    write_summary(runs, "odd", odd)
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert re.search(r'<th scope="row">BoVW</th>\s*<td>–</td>\s*<td>–</td>', html)


def test_without_an_index_the_page_explains_which_command_builds_it(home):
    app = create_app({"TESTING": True, "CBIR_SETTINGS": Settings.resolve(env={}, home=home)})
    response = app.test_client().get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "No index to search yet" in html and "<code>cbir index</code>" in html
    assert '<form id="search-form" class="query" hidden>' in html
    assert client_config(html)["ready"] is False


def test_an_index_built_after_the_start_is_picked_up(home, tmp_path):
    from benchmarks.web_index import build_web_index

    later = tmp_path / "later"
    settings = Settings.resolve(env={}, home=home, store=f"local:{later / 'home' / 'index'}")
    app = create_app({"TESTING": True, "CBIR_SETTINGS": settings, "CBIR_INDEX_RETRY_SECONDS": 0})
    client = app.test_client()
    assert client.get("/api/health").json["index"] == "missing"
    assert client.post("/api/search", json={"id": "test/red/000.png"}).status_code == 503
    build_web_index(later)
    assert client.get("/api/health").json["index"] == "ready"
    assert client.post("/api/search", json={"id": "test/red/000.png"}).status_code == 200
    assert "No index to search yet" not in client.get("/").get_data(as_text=True)


def test_a_store_that_cannot_be_opened_is_explained_too(home):
    settings = Settings.resolve(env={}, home=home, store="ftp://nowhere")
    app = create_app({"TESTING": True, "CBIR_SETTINGS": settings})
    client = app.test_client()
    html = client.get("/").get_data(as_text=True)
    assert "The index cannot be opened" in html and "neither local:PATH" in html
    health = client.get("/api/health").json
    assert health["index"] == "unavailable" and "ftp://nowhere" in health["message"]
    response = client.post("/api/search", json={"id": "x"})
    assert response.status_code == 503 and "set CBIR_STORE or --store" in response.json["error"]


def test_create_app_without_config_reads_the_environment(monkeypatch, web_index, home):
    monkeypatch.setenv("CBIR_HOME", str(home))
    monkeypatch.setenv("CBIR_STORE", web_index.store)
    monkeypatch.delenv("CBIR_MAX_UPLOAD_MB", raising=False)
    app = create_app()
    assert app.config["CBIR_SETTINGS"].home == home
    assert app.config["MAX_CONTENT_LENGTH"] == 10 * 1024 * 1024
    assert app.test_client().get("/api/stats").json["documents"] == len(LABELS) * TRAIN_PER_LABEL


def test_an_index_whose_dataset_is_gone_is_503_not_a_client_error(home, tmp_path):
    import shutil

    from benchmarks.web_index import build_web_index

    settings = build_web_index(tmp_path)
    shutil.rmtree(tmp_path / "data")
    app = create_app({"TESTING": True, "CBIR_SETTINGS": settings})
    response = app.test_client().post("/api/search", json={"id": "test/red/000.png"})
    assert response.status_code == 503 and "data" in response.json["error"]
