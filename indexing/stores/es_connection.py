"""Connecting to Elasticsearch: the store URL, credentials from the environment, the version
check, and one-line errors that name the URL.

    http(s)://host[:port][/INDEX][?index_options=TYPE&m=16&ef_construction=100]

INDEX defaults to `cbir`; the port to 9200 for http and 443 for https (cloud endpoints).
`m` and `ef_construction` apply to the HNSW types only. Credentials never come from the URL or code:
CBIR_ES_USER + CBIR_ES_PASSWORD (basic auth) or CBIR_ES_API_KEY (an encoded API key), and
CBIR_ES_CA_CERTS for a private certificate authority.

The Python client speaks one major version of the REST API (it sends
`compatible-with=<its major>`); a server of an older major refuses it, so an 8.x server
needs the 8.x client (`pip install 'elasticsearch>=8.16,<9'`) and we say so on open.
Which server version serves which feature is in `FEATURES` (docs/elasticsearch.md shows it);
`connect` refuses a server too old for the store URL's options in one line.
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
DEFAULT_TLS_PORT = 443
MIN_MAJOR = 8
CLIENT_FLOOR = "8.16"  # helpers.streaming_bulk(retry_on_status=...) appeared in 8.16
HNSW_DEFAULTS = {"m": 16, "ef_construction": 100}
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

    @property
    def is_quantized(self) -> bool:
        """Whether kNN scores come from quantized vectors (not the stored floats)."""
        return self.value.startswith(("int8", "int4", "bbq"))


# Server version from which each feature the store uses exists (release notes and the
# server's DenseVectorFieldMapper / KnnSearchBuilder history; docs/elasticsearch.md).
KNN_SEARCH = "top-level knn search"
RESCORE_VECTOR = "knn rescore_vector"
FEATURES: dict[str, tuple[int, int]] = {
    KNN_SEARCH: (8, 4),
    "index_options=hnsw": (8, 0),
    "index_options=int8_hnsw": (8, 12),
    "index_options=flat": (8, 13),
    "index_options=int8_flat": (8, 13),
    "index_options=int4_hnsw": (8, 15),
    "index_options=int4_flat": (8, 15),
    "index_options=bbq_hnsw": (8, 16),
    "index_options=bbq_flat": (8, 16),
    "index_options=bbq_disk": (9, 2),
    RESCORE_VECTOR: (8, 18),
}
MIN_SERVER = FEATURES[KNN_SEARCH]
# DenseVectorFieldMapper.MAX_DIMS_COUNT: 1024 before 8.8, 2048 in 8.8-8.10, 4096 from 8.11.
MAX_DIMS_BY_VERSION = (((8, 8), 1024), ((8, 11), 2048))
MAX_DIMS = 4096
BBQ_MIN_DIMS = 64  # DenseVectorFieldMapper.BBQ_MIN_DIMS
# bbq_disk writes need these licences on indices created from 9.3 (elasticsearch#139087).
LICENSED: dict[IndexOptions, tuple[tuple[int, int], frozenset[str]]] = {
    IndexOptions.BBQ_DISK: ((9, 3), frozenset({"enterprise", "trial"})),
}


def version_text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def max_dims(version: tuple[int, int]) -> int:
    """The most dims a server of `version` indexes in one dense_vector field."""
    for before, limit in MAX_DIMS_BY_VERSION:
        if version < before:
            return limit
    return MAX_DIMS


def missing_feature(version: tuple[int, int], options: IndexOptions) -> str | None:
    """What the store would need that a server of `version` lacks, or None."""
    for feature in (KNN_SEARCH, f"index_options={options.value}"):
        if version < FEATURES[feature]:
            return f"{feature} needs {version_text(FEATURES[feature])} or newer"
    return None


@dataclass(frozen=True)
class EsTarget:
    """Where the index lives and how its vectors are indexed."""

    base_url: str  # scheme://host:port
    index: str
    index_options: IndexOptions = IndexOptions.HNSW
    # HNSW graph parameters (8.x requires them spelled out; these are the server defaults).
    hnsw: dict[str, int] = field(default_factory=lambda: dict(HNSW_DEFAULTS))

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
        port = parts.port or (DEFAULT_TLS_PORT if parts.scheme == "https" else DEFAULT_PORT)
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
            options.setdefault("hnsw", dict(HNSW_DEFAULTS))[key] = int(value)
        else:
            raise StoreError(
                f"unknown option {key!r} in {url!r}; the URL takes index_options, m, ef_construction"
            )
    kind = options.get("index_options", IndexOptions.HNSW)
    if "hnsw" in options and not kind.is_hnsw:
        raise StoreError(
            f"m and ef_construction in {url!r} are HNSW graph parameters; index_options={kind.value} "
            "builds no graph: drop them or choose an *_hnsw type"
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
            "the Elasticsearch store needs the elasticsearch package: "
            f"pip install 'elasticsearch>={CLIENT_FLOOR},<10'"
        ) from None
    env = os.environ if env is None else env
    options = {"request_timeout": 60, "retry_on_timeout": True, "max_retries": 3}
    options.update(client_options(env))
    options.update(client_kwargs)
    try:
        client = elasticsearch.Elasticsearch(target.base_url, **options)
    except ValueError as exc:  # e.g. TLS options (CBIR_ES_CA_CERTS) with an http:// URL
        hint = " (CBIR_ES_CA_CERTS needs an https:// URL)" if "TLS" in str(exc) else ""
        raise StoreError(
            f"cannot connect to Elasticsearch at {target.url}: {one_line(exc)}{hint}"
        ) from None
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
        floor = CLIENT_FLOOR if server[0] == MIN_MAJOR else f"{server[0]}.0"
        client.close()
        raise StoreError(
            f"Elasticsearch at {target.url} is {version}, but the installed elasticsearch client "
            f"{elasticsearch.__versionstr__} only talks to {client_major}.x servers: "
            f"pip install 'elasticsearch>={floor},<{server[0] + 1}'"
        )
    missing = missing_feature(server, target.index_options)
    if missing:
        client.close()
        raise StoreError(f"Elasticsearch at {target.url} is {version}; {missing}")
    check_licence(client, target, server)
    return client, server


def check_licence(client: Any, target: EsTarget, server: tuple[int, int]) -> None:
    """Refuse a licensed index_options the server's licence does not cover (before any write)."""
    if target.index_options not in LICENSED:
        return
    since, allowed = LICENSED[target.index_options]
    if server < since:
        return
    with translate_errors(target.url, "read the licence of"):
        licence = client.license.get().body.get("license") or {}
    kind, status = licence.get("type", "none"), licence.get("status", "none")
    if kind not in allowed or status != "active":
        client.close()
        raise StoreError(
            f"index_options={target.index_options.value} at {target.url} needs an active "
            f"{' or '.join(sorted(allowed))} licence from {version_text(since)} on; the server's "
            f"licence is {kind} ({status}): choose index_options=bbq_hnsw or int8_hnsw"
        )


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
    """`type: reason (caused by ...)` of an Elasticsearch error response, on one line."""
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return describe_error(error)
    return one_line(f"{getattr(exc, 'status_code', '')} {getattr(exc, 'message', exc)}")


def describe_error(error: Mapping[str, Any], depth: int = 4) -> str:
    """An error object as `type: reason`, its `caused_by` chain after it, on one line."""
    parts = [f"{error.get('type')}: {error.get('reason')}"]
    cause = error.get("caused_by")
    while isinstance(cause, Mapping) and len(parts) <= depth:
        parts.append(f"caused by {cause.get('type')}: {cause.get('reason')}")
        cause = cause.get("caused_by")
    roots = error.get("root_cause") or []
    if roots and isinstance(roots[0], Mapping) and roots[0].get("type") != error.get("type"):
        root = roots[0]
        text = f"{root.get('type')}: {root.get('reason')}"
        if not any(text in part for part in parts):
            parts.append(f"root cause {text}")
    return one_line("; ".join(parts))
