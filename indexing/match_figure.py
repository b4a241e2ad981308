""" "Why it matched": a verified pair drawn as SVG, the two images side by side with inlier lines."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

import numpy as np

from features.local import LocalFeatures
from features.verify import Verification


def fractions(xy: np.ndarray, features: LocalFeatures) -> np.ndarray:
    """Pixel positions (of the image the features came from) as fractions of its width, height."""
    height, width = features.shape
    return xy * features.scale / np.array([width, height], dtype=np.float64)


def match_svg(
    verification: Verification,
    query: LocalFeatures,
    candidate: LocalFeatures,
    query_href: str,
    candidate_href: str,
    height: int = 300,
    max_lines: int = 200,
) -> str:
    """SVG of the query (left) and candidate (right) at `height` px with up to `max_lines`
    inlier lines; `query` is the view the verification used (mirrored positions are flipped
    back onto the query as shown)."""
    qh, qw = query.shape
    ch, cw = candidate.shape
    q_width = height * qw / max(qh, 1)
    c_width = height * cw / max(ch, 1)
    gap = 20.0
    q = fractions(verification.query_xy, query)
    if verification.mirrored:
        q[:, 0] = 1.0 - q[:, 0]
    c = fractions(verification.candidate_xy, candidate)
    lines = []
    for (qx, qy), (cx, cy) in list(zip(q, c, strict=True))[:max_lines]:
        lines.append(
            f'<line x1="{qx * q_width:.1f}" y1="{qy * height:.1f}" '
            f'x2="{q_width + gap + cx * c_width:.1f}" y2="{cy * height:.1f}"/>'
        )
    summary = verification.to_json()
    title = (
        f"{summary['inliers']} inliers of {summary['matches']} matches; "
        f"rotation {summary['angle']} deg, scale {summary['scale']}"
        + (", mirrored" if summary["mirrored"] else "")
    )
    total = q_width + gap + c_width
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total:.0f}" height="{height + 24}" '
        f'viewBox="0 0 {total:.0f} {height + 24}">'
        f"<title>{_escape(title)}</title>"
        f'<image href={quoteattr(query_href)} x="0" y="0" width="{q_width:.1f}" '
        f'height="{height}" preserveAspectRatio="none"/>'
        f'<image href={quoteattr(candidate_href)} x="{q_width + gap:.1f}" y="0" '
        f'width="{c_width:.1f}" height="{height}" preserveAspectRatio="none"/>'
        f'<g stroke="#00e676" stroke-width="1" stroke-opacity="0.8">{"".join(lines)}</g>'
        f'<text x="0" y="{height + 18}" font-family="sans-serif" font-size="14">'
        f"{_escape(title)}</text></svg>"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
