"""ServiceHolder (one SearchService per process, retried while missing) and SearchService.stats."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from benchmarks.synthetic import class_images
from benchmarks.toy_extractors import ColourMomentsExtractor
from benchmarks.web_index import build_web_index
from cbir.core.config import Settings
from cbir.stages.index import index_dataset
from indexing.search import IndexMissingError, SearchService
from indexing.service_holder import ServiceHolder
from indexing.stores.base import StoreError
from indexing.stores.urls import open_store


class FakeService:
    def __init__(self, current: bool = True):
        self.current = current
        self.closed = False

    def is_current(self) -> bool:
        if isinstance(self.current, Exception):
            raise self.current
        return self.current

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_once_and_hands_out_the_same_service():
    opened = []

    def opener():
        opened.append(FakeService())
        return opened[-1]

    holder = ServiceHolder(opener, retry_seconds=0)
    assert holder.get() is holder.get() is opened[0] and len(opened) == 1


def test_a_missing_index_is_retried_at_most_once_per_interval():
    clock = Clock()
    calls = []

    def opener():
        calls.append(clock.now)
        if clock.now < 5:
            raise IndexMissingError("no index; build one with `cbir index`")
        return FakeService()

    holder = ServiceHolder(opener, retry_seconds=2.0, clock=clock)
    for now in (0.0, 0.5, 1.9):
        clock.now = now
        with pytest.raises(IndexMissingError, match="cbir index"):
            holder.get()
    assert calls == [0.0] and holder.peek() is None and "cbir index" in str(holder.error)
    clock.now = 2.0
    with pytest.raises(IndexMissingError):
        holder.get()
    clock.now = 5.0
    assert isinstance(holder.get(), FakeService) and calls == [0.0, 2.0, 5.0]
    assert holder.error is None


def test_a_changed_index_is_reopened_and_the_old_service_left_to_running_requests():
    clock = Clock()
    services = [FakeService(), FakeService()]
    holder = ServiceHolder(lambda: services.pop(0), retry_seconds=1.0, clock=clock)
    first = holder.get()
    first.current = False
    clock.now = 0.5
    assert holder.get() is first  # not checked again before the interval
    clock.now = 1.0
    second = holder.get()
    assert second is not first and not first.closed


def test_a_failing_check_keeps_the_open_service():
    clock = Clock()
    holder = ServiceHolder(lambda: FakeService(StoreError("server unreachable")), 1.0, clock)
    first = holder.get()
    clock.now = 10
    assert holder.get() is first


def test_concurrent_first_requests_open_one_service():
    opened = []
    gate = threading.Barrier(8)

    def opener():
        opened.append(FakeService())
        return opened[-1]

    holder = ServiceHolder(opener, retry_seconds=60)
    got = []

    def request():
        gate.wait()
        got.append(holder.get())

    threads = [threading.Thread(target=request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 1 and all(s is opened[0] for s in got)


def test_search_service_is_current_until_the_index_changes(web_index, tmp_path):
    service = SearchService.open(web_index)
    try:
        assert service.is_current()
        assert service.base_methods == ["bovw", "cnn"]
        assert service.score_kind("bovw") == "cosine" and service.score_kind("fusion") == "rrf"
    finally:
        service.close()
    # A copy of the generated index, then `cnn` rebuilt by another model after a drop.
    build_web_index(tmp_path)
    settings = Settings.resolve(env={}, home=tmp_path / "home")
    service = SearchService.open(settings)
    try:
        assert service.is_current()
        with open_store(settings.store, settings) as store:
            store.drop()
        index(settings, tmp_path, {"bovw": tmp_path / "models" / "bovw"})
        assert not service.is_current()  # cnn is gone
        train = [np.asarray(img) for img in class_images(0, 4, seed=1)]
        other = ColourMomentsExtractor(3.0).fit(train).save(tmp_path / "models" / "cnn-2")
        index(settings, tmp_path, {"cnn": other})
        assert not service.is_current()  # cnn is back, built by another model
    finally:
        service.close()
    reopened = SearchService.open(settings)
    try:
        assert (
            reopened.is_current()
            and reopened.stats()["methods"]["cnn"]["model"] == "colour-moments"
        )
    finally:
        reopened.close()


def index(settings, root, models):
    index_dataset(
        settings,
        dataset="folder",
        data=str(root / "data"),
        methods=tuple(models),
        models=models,
        ray=None,
        show_progress=False,
    )
