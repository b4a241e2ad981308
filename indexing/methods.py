"""Method names as users type them: a base method, then re-ranking steps (`cnn+qe`, `fusion`).

A base method is a field of the index (`bovw`, `cnn`, ...) or `fusion` (every field's list,
fused). Suffixes name what happens after the first search: `+qe` is alpha query expansion
(indexing/expansion.py). Parsed once into a `MethodName`; code compares its parts, never the
spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

from cbir.core.errors import CbirError

FUSION = "fusion"
EXPANSION = "qe"
SUFFIXES = (EXPANSION,)  # in the order they are written and applied


class MethodNameError(CbirError):
    """A method name that is not `<base>[+qe]`."""


@dataclass(frozen=True)
class MethodName:
    """`base` (a field name or 'fusion') and the re-ranking steps applied after it."""

    base: str
    expanded: bool = False

    @classmethod
    def parse(cls, text: str | MethodName) -> MethodName:
        """'cnn' -> cnn; 'cnn+qe' -> cnn expanded; MethodNameError naming the text otherwise."""
        if isinstance(text, MethodName):
            return text
        base, *steps = str(text).strip().split("+")
        unknown = [s for s in steps if s not in SUFFIXES]
        if not base or unknown or len(set(steps)) < len(steps):
            raise MethodNameError(
                f"cannot read method {text!r}: write a method (e.g. cnn, bovw, {FUSION}) "
                f"optionally followed by +{EXPANSION} (query expansion), e.g. cnn+{EXPANSION}"
            )
        return cls(base, EXPANSION in steps)

    @property
    def is_fusion(self) -> bool:
        return self.base == FUSION

    def __str__(self) -> str:
        return self.base + (f"+{EXPANSION}" if self.expanded else "")
