"""Effective configuration: environment variables, with command-line flags on top."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from cbir.core.errors import ConfigError

DEFAULT_HOME = "./var"
# Pixels one image may decode to (8192 x 8192): a 48 Mpx HEIC or PNG fits; JPEG decodes reduced.
DEFAULT_MAX_PIXELS = 64_000_000

ENV_NAMES = {
    "home": "CBIR_HOME",
    "cifar10": "CBIR_CIFAR10",
    "store": "CBIR_STORE",
    "es_url": "CBIR_ES_URL",
    "max_pixels": "CBIR_MAX_PIXELS",
}


@dataclass(frozen=True)
class Settings:
    """Where models, indexes and runs live, and where the data and the store are.

    `home` holds models/, indexes/ (the embedded store), runs/ and reports/.
    `store` is a store URL: `local:PATH` (embedded, the default `local:<home>/index`)
    or `http(s)://host:port` (Elasticsearch).
    """

    home: Path
    cifar10: str | None
    store: str
    es_url: str | None
    max_pixels: int
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from `env` (default: os.environ); non-None overrides (CLI flags) win."""
        env = os.environ if env is None else env

        sources: dict[str, str] = {}

        def pick(key: str) -> str | None:
            value = overrides.get(key)
            if value is not None:
                sources[key] = "flag"
                return str(value)
            raw = env.get(ENV_NAMES[key], "")
            sources[key] = "environment" if raw else "default"
            return raw or None

        home = Path(pick("home") or DEFAULT_HOME).expanduser()
        store = pick("store") or f"local:{home / 'index'}"
        raw_pixels = pick("max_pixels") or str(DEFAULT_MAX_PIXELS)
        try:
            max_pixels = int(raw_pixels)
        except ValueError:
            raise ConfigError(
                f"{ENV_NAMES['max_pixels']}={raw_pixels!r} is not an integer number of pixels"
            ) from None
        if max_pixels <= 0:
            raise ConfigError(f"{ENV_NAMES['max_pixels']} must be positive, got {max_pixels}")
        return cls(
            home=home,
            cifar10=pick("cifar10"),
            store=store,
            es_url=pick("es_url"),
            max_pixels=max_pixels,
            sources=sources,
        )

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def describe(self) -> list[tuple[str, str, str]]:
        """Rows of (environment variable, effective value, where it came from) for `cbir config`."""
        rows = []
        for f in fields(self):
            if f.name not in ENV_NAMES:
                continue
            value = getattr(self, f.name)
            shown = "(not set)" if value is None else str(value)
            rows.append((ENV_NAMES[f.name], shown, self.sources.get(f.name, "default")))
        return rows
