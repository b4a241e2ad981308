"""Method names as users type them: a base method, then re-ranking steps (`cnn+qe`, `cnn+gv`).

A base method is a field of the index (`bovw`, `cnn`, ...) or `fusion` (every field's list,
fused). Suffixes name what happens after the first search: `+qe` is alpha query expansion
(indexing/expansion.py), `+gv` geometric verification of the top candidates
(indexing/verified_search.py); written and applied in that order. Parsed once into a `MethodName`; code compares its parts, never the
spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

from cbir.core.errors import CbirError

FUSION = "fusion"
EXPANSION = "qe"
VERIFIED = "gv"
SUFFIXES = (EXPANSION, VERIFIED)  # in the order they are written and applied


class MethodNameError(CbirError):
    """A method name that is not `<base>[+qe][+gv]`."""


@dataclass(frozen=True)
class MethodName:
    """`base` (a field name or 'fusion') and the re-ranking steps applied after it."""

    base: str
    expanded: bool = False
    verified: bool = False

    @classmethod
    def parse(cls, text: str | MethodName) -> MethodName:
        """'cnn' -> cnn; 'cnn+qe+gv' -> cnn expanded, verified; MethodNameError naming the text
        otherwise (also for steps out of order)."""
        if isinstance(text, MethodName):
            return text
        base, *steps = str(text).strip().split("+")
        unknown = [s for s in steps if s not in SUFFIXES]
        ordered = steps == sorted(steps, key=lambda s: SUFFIXES.index(s)) if not unknown else False
        if not base or unknown or len(set(steps)) < len(steps) or not ordered:
            raise MethodNameError(
                f"cannot read method {text!r}: write a method (e.g. cnn, bovw, {FUSION}) "
                f"optionally followed by +{EXPANSION} (query expansion) then +{VERIFIED} "
                f"(geometric verification), e.g. cnn+{EXPANSION}, cnn+{VERIFIED}, "
                f"cnn+{EXPANSION}+{VERIFIED}"
            )
        return cls(base, EXPANSION in steps, VERIFIED in steps)

    @property
    def is_fusion(self) -> bool:
        return self.base == FUSION

    @property
    def unverified(self) -> MethodName:
        """The same method without its verification step (what +gv re-ranks)."""
        return MethodName(self.base, self.expanded)

    def __str__(self) -> str:
        return (
            self.base
            + (f"+{EXPANSION}" if self.expanded else "")
            + (f"+{VERIFIED}" if self.verified else "")
        )
