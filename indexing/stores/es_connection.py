"""Connecting to Elasticsearch: the store URL, credentials from the environment, the version
check, and one-line errors that name the URL.

    http(s)://host[:port][/INDEX][?index_options=TYPE&m=16&ef_construction=100]

INDEX defaults to `cbir`, the port to 9200. Credentials never come from the URL or code:
CBIR_ES_USER + CBIR_ES_PASSWORD (basic auth) or CBIR_ES_API_KEY (an encoded API key), and
CBIR_ES_CA_CERTS for a private certificate authority.

The Python client speaks one major version of the REST API (it sends
`compatible-with=<its major>`); a server of an older major refuses it, so an 8.x server
needs the 8.x client (`pip install 'elasticsearch>=8.15,<9'`) and we say so on open.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

from indexing.stores.base import StoreError

DEFAULT_INDEX = "cbir"
DEFAULT_PORT = 9200
MIN_MAJOR = 8
BAD_INDEX_CHARS = re.compile(r'[\\/*?"<>| ,#:A-Z]')


class IndexOptions(StrEnum):
    """The dense_vector `index_options.type` values a store may ask for."""

    HNSW = "hnsw"
    INT8_HNSW = "int8_hnsw"
    INT4_HNSW = "int4_hnsw"
    BBQ_HNSW = "bbq_hnsw"
    FLAT = "flat"
    INT8_FLAT = "int8_flat"
    INT4_FLAT = "int4_flat"
    BBQ_FLAT = "bbq_flat"
    BBQ_DISK = "bbq_disk"

    @property
    def is_hnsw(self) -> bool:
        return self.value.endswith("hnsw")


@dataclass(frozen=True)
class EsTarget:
    """Where the index lives and how its vectors are indexed."""

    base_url: str  # scheme://host:port
    index: str
    index_options: IndexOptions = IndexOptions.HNSW
    # HNSW graph parameters (8.x requires them spelled out; these are the server defaults).
    hnsw: dict[str, int] = field(default_factory=lambda: {"m": 16, "ef_construction": 100})

    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.index}"


def parse_es_url(url: str) -> EsTarget:
    """Parse a store URL; StoreError for credentials in it, a bad index name or option."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise StoreError(
            "do not put credentials in the store URL; set CBIR_ES_USER and CBIR_ES_PASSWORD, "
            "or CBIR_ES_API_KEY"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StoreError(f"{url!r} is not an http(s)://host:port URL")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise StoreError(f"{url!r} has an invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    index = parts.path.strip("/") or DEFAULT_INDEX
    check_index_name(index, url)
    options: dict[str, Any] = {}
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        value = values[-1]
        if key == "index_options":
            try:
                options["index_options"] = IndexOptions(value)
            except ValueError:
                known = ", ".join(o.value for o in IndexOptions)
                raise StoreError(
                    f"index_options={value!r} in {url!r}: choose one of {known}"
                ) from None
        elif key in ("m", "ef_construction"):
            if not value.isdigit() or int(value) < 2:
                raise StoreError(f"{key}={value!r} in {url!r} must be an integer >= 2")
            options.setdefault("hnsw", {"m": 16, "ef_construction": 100})[key] = int(value)
        else:
            raise StoreError(
                f"unknown option {key!r} in {url!r}; the URL takes index_options, m, ef_construction"
            )
    return EsTarget(f"{parts.scheme}://{host}:{port}", index, **options)


def check_index_name(index: str, url: str) -> None:
    """Elasticsearch's rules for index names, checked before the server is asked."""
    if (
        "/" in index
        or BAD_INDEX_CHARS.search(index)
        or index.startswith(("-", "_", "+"))
        or index in (".", "..")
        or len(index.encode()) > 255
    ):
        raise StoreError(
            f"{index!r} (from {url!r}) is not a valid Elasticsearch index name: use lower-case "
            "letters, digits, '-' and '_', not starting with '-', '_' or '+'"
        )


def client_options(env: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for `Elasticsearch(...)`: credentials and CA from the environment."""
    user, password = env.get("CBIR_ES_USER"), env.get("CBIR_ES_PASSWORD")
    api_key = env.get("CBIR_ES_API_KEY")
    options: dict[str, Any] = {}
    if api_key and (user or password):
        raise StoreError("set either CBIR_ES_API_KEY or CBIR_ES_USER/CBIR_ES_PASSWORD, not both")
    if api_key:
        options["api_key"] = api_key
    elif user or password:
        if not (user and password):
            raise StoreError("CBIR_ES_USER and CBIR_ES_PASSWORD must be set together")
        options["basic_auth"] = (user, password)
    if env.get("CBIR_ES_CA_CERTS"):
        options["ca_certs"] = env["CBIR_ES_CA_CERTS"]
    return options


def connect(target: EsTarget, env: Mapping[str, str] | None = None, **client_kwargs: Any):
    """An `Elasticsearch` client for `target`, after checking that the server can serve us.

    Returns (client, server version as (major, minor)).
    """
    try:
        import elasticsearch
    except ImportError:
        raise StoreError(
            "the Elasticsearch store needs the elasticsearch package: pip install 'elasticsearch>=8.15,<10'"
        ) from None
    env = os.environ if env is None else env
    options = {"request_timeout": 60, "retry_on_timeout": True, "max_retries": 3}
    options.update(client_options(env))
    options.update(client_kwargs)
    client = elasticsearch.Elasticsearch(target.base_url, **options)
    with translate_errors(target.url, "connect to"):
        # Accept */* keeps the client from asking for its own REST compatibility version,
        # so an older server still answers and we can say what is wrong.
        info = client.perform_request("GET", "/", headers={"accept": "*/*"}).body
    version = str(info.get("version", {}).get("number", "")) if isinstance(info, dict) else ""
    match = re.match(r"(\d+)\.(\d+)", version)
    if not match:
        client.close()
        raise StoreError(
            f"{target.url} did not report an Elasticsearch version; is it Elasticsearch?"
        )
    server = (int(match.group(1)), int(match.group(2)))
    client_major = int(elasticsearch.__versionstr__.split(".")[0])
    if server[0] < MIN_MAJOR:
        client.close()
        raise StoreError(f"Elasticsearch at {target.url} is {version}; cbir needs 8.x or 9.x")
    if server[0] < client_major:
        client.close()
        raise StoreError(
            f"Elasticsearch at {target.url} is {version}, but the installed elasticsearch client "
            f"{elasticsearch.__versionstr__} only talks to {client_major}.x servers: "
            f"pip install 'elasticsearch>={server[0]}.15,<{server[0] + 1}'"
        )
    return client, server


def one_line(text: object) -> str:
    return " ".join(str(text).split())


@contextlib.contextmanager
def translate_errors(url: str, what: str) -> Iterator[None]:
    """Turn client and transport exceptions into a one-line StoreError naming `url`."""
    import elastic_transport
    import elasticsearch

    try:
        yield
    except elasticsearch.AuthenticationException:
        raise StoreError(
            f"Elasticsearch at {url} refused our credentials (401); set CBIR_ES_USER and "
            "CBIR_ES_PASSWORD, or CBIR_ES_API_KEY"
        ) from None
    except elasticsearch.AuthorizationException as exc:
        raise StoreError(
            f"Elasticsearch at {url} does not allow us to {what} it (403): {reason(exc)}"
        ) from None
    except elasticsearch.UnsupportedProductError:
        raise StoreError(f"{url} answered, but it is not Elasticsearch") from None
    except elasticsearch.ApiError as exc:
        raise StoreError(
            f"Elasticsearch at {url} could not {what} the index: {reason(exc)}"
        ) from None
    except elastic_transport.TransportError as exc:
        raise StoreError(f"cannot reach Elasticsearch at {url}: {one_line(exc.message)}") from None


def reason(exc: Any) -> str:
    """`type: reason` of an Elasticsearch error response, on one line."""
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        cause = (error.get("root_cause") or [error])[0]
        return one_line(
            f"{cause.get('type', error.get('type'))}: {cause.get('reason', error.get('reason'))}"
        )
    return one_line(f"{getattr(exc, 'status_code', '')} {getattr(exc, 'message', exc)}")
