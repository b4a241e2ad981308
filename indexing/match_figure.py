""" "Why it matched" as SVG, the two images side by side: inlier lines of a verified pair, or
the keypoints of the visual words two images share."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

import numpy as np

from features.bovw_words import WordMatch
from features.local import LocalFeatures
from features.verify import Verification

GAP = 20.0  # px between the two images
WORDS_DRAWN = 60  # shared words drawn, most contributing first: more is a blur of circles


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
    q_width, c_width = _widths(query.shape, candidate.shape, height)
    q = fractions(verification.query_xy, query)
    if verification.mirrored:
        q[:, 0] = 1.0 - q[:, 0]
    c = fractions(verification.candidate_xy, candidate)
    lines = []
    for (qx, qy), (cx, cy) in list(zip(q, c, strict=True))[:max_lines]:
        lines.append(
            f'<line x1="{qx * q_width:.1f}" y1="{qy * height:.1f}" '
            f'x2="{q_width + GAP + cx * c_width:.1f}" y2="{cy * height:.1f}"/>'
        )
    summary = verification.to_json()
    title = (
        f"{summary['inliers']} inliers of {summary['matches']} matches; "
        f"rotation {summary['angle']} deg, scale {summary['scale']}"
        + (", mirrored" if summary["mirrored"] else "")
    )
    body = f'<g stroke="#00e676" stroke-width="1" stroke-opacity="0.8">{"".join(lines)}</g>'
    return _figure(query_href, candidate_href, q_width, c_width, height, body, title)


def words_svg(
    match: WordMatch,
    query_shape: tuple[int, int],
    result_shape: tuple[int, int],
    query_href: str,
    result_href: str,
    height: int = 300,
    max_words: int = WORDS_DRAWN,
) -> str:
    """SVG of the query (left) and result (right), each shape (height, width) in pixels, at
    `height` px: the keypoints of the first `max_words` shared words as circles, one colour per
    word (a group `data-word`), joined by a line when the word occurs once in each image."""
    q_width, r_width = _widths(query_shape, result_shape, height)
    groups = []
    for i, word in enumerate(match.words[:max_words]):
        q = word.query * np.array([q_width, height])
        r = word.result * np.array([r_width, height]) + np.array([q_width + GAP, 0.0])
        marks = [f'<circle class="q" cx="{x:.1f}" cy="{y:.1f}" r="4"/>' for x, y in q]
        marks += [f'<circle class="r" cx="{x:.1f}" cy="{y:.1f}" r="4"/>' for x, y in r]
        if len(q) == 1 and len(r) == 1:
            marks.append(
                f'<line x1="{q[0, 0]:.1f}" y1="{q[0, 1]:.1f}" x2="{r[0, 0]:.1f}" y2="{r[0, 1]:.1f}"/>'
            )
        hue = (i * 137.508) % 360  # golden-angle steps: neighbouring words get distant colours
        groups.append(
            f'<g data-word="{word.word}" stroke="hsl({hue:.0f},90%,55%)">{"".join(marks)}</g>'
        )
    drawn = min(len(match.words), max_words)
    title = (
        f"{len(match.words)} shared visual words ({drawn} drawn) of the query's "
        f"{match.query_words}; {100 * match.query_weight_share:.0f} % of its tf-idf weight"
        + (", query mirrored" if match.mirrored else "")
    )
    body = f'<g fill="none" stroke-width="2" stroke-opacity="0.9">{"".join(groups)}</g>'
    return _figure(query_href, result_href, q_width, r_width, height, body, title)


def _widths(left: tuple[int, int], right: tuple[int, int], height: int) -> tuple[float, float]:
    """Widths of two images of shape (height, width) drawn `height` px high."""
    return height * left[1] / max(left[0], 1), height * right[1] / max(right[0], 1)


def _figure(
    left_href: str, right_href: str, left: float, right: float, height: int, body: str, title: str
) -> str:
    total = left + GAP + right
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total:.0f}" height="{height + 24}" '
        f'viewBox="0 0 {total:.0f} {height + 24}">'
        f"<title>{_escape(title)}</title>"
        f'<image href={quoteattr(left_href)} x="0" y="0" width="{left:.1f}" '
        f'height="{height}" preserveAspectRatio="none"/>'
        f'<image href={quoteattr(right_href)} x="{left + GAP:.1f}" y="0" '
        f'width="{right:.1f}" height="{height}" preserveAspectRatio="none"/>'
        f"{body}"
        f'<text x="0" y="{height + 18}" font-family="sans-serif" font-size="14">'
        f"{_escape(title)}</text></svg>"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
