"""Which store a URL names (`local:PATH`, `http(s)://host:port`), opened."""

from __future__ import annotations

from collections.abc import Mapping

from cbir.core.config import Settings
from indexing.stores.base import StoreError, VectorStore


def open_store(
    url: str | None = None,
    settings: Settings | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> VectorStore:
    """Open the store at `url` (default: `settings.store`, i.e. CBIR_STORE).

    `local:PATH` is the embedded store in directory PATH; `http(s)://host:port[/INDEX]
    [?index_options=TYPE]` is Elasticsearch (index `cbir` by default), with credentials
    from CBIR_ES_USER / CBIR_ES_PASSWORD or CBIR_ES_API_KEY in `env` (default os.environ).
    """
    if url is None:
        if settings is None:
            settings = Settings.resolve(env=env)
        url = settings.store
    if url.startswith("local:"):
        from indexing.stores.embedded import EmbeddedStore  # imported on use: keeps the CLI light

        return EmbeddedStore.open(url)
    if url.startswith(("http://", "https://")):
        from indexing.stores.es import ElasticsearchStore  # the client loads only when used

        return ElasticsearchStore.open(url, env=env)
    raise StoreError(
        f"store URL {url!r} is neither local:PATH (embedded) nor http(s)://host:port "
        "(Elasticsearch); set CBIR_STORE or --store"
    )
