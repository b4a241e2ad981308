"""CNN embeddings on the validation split: what extra test-time views and re-ranking buy.

The model's own held-out images (its `validation.json`: never trained on, never the test
split) are the queries, the rest of the train split the index, scored as the model card
scores them (`evaluation.validation.validation_retrieval`). Rows:

- `encoding`: the model's encoding (the image and its mirror averaged); `one view`: no mirror;
- `queries +translate`: each query also averaged over its 1-pixel shifts up-left and
  down-right (reflect padding) and their mirrors, 6 views with airbench's weights
  (1/4 for the unshifted pair, 1/8 for the others), the index encoded as stored;
- `α-QE k:α`: `indexing.expansion` on the encoding;
- `αDBA k:α + α-QE k:α`: database-side augmentation first (every index vector replaced by
  the α-QE of itself among the index, Radenović et al., TPAMI 2018), then α-QE.

    CBIR_CIFAR10=/path/to/cifar10 python -m benchmarks.cnn_validation --model features/models/cnn

Each row prints AP@100/min(R,100), P@10 and map_cut_100 and is appended to `--out` (JSONL).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cbir.core.config import Settings
from cbir.core.progress import Stopwatch, summary_line
from evaluation.fusion_tuning import VALIDATION_FILE, validation_ids
from evaluation.validation import validation_retrieval
from features.base import l2_normalise
from features.cnn_train import autocast, to_input
from features.registry import load_extractor
from indexing.expansion import Expansion, expand_vectors
from indexing.stores.topk import exact_top_k

TRANSLATE_WEIGHTS = {(1, 1): 0.25, (0, 0): 0.125, (2, 2): 0.125}  # crop offset -> weight


def translated_views(batch: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
    """Crops of the 1-pixel reflect-padded batch (n, c, h, w) by offset; (1, 1) is the batch."""
    h, w = batch.shape[2:]
    padded = F.pad(batch, (1, 1, 1, 1), mode="reflect")
    return {(dy, dx): padded[:, :, dy : dy + h, dx : dx + w] for dy, dx in TRANSLATE_WEIGHTS}


def encode_translated(extractor, images: np.ndarray) -> np.ndarray:
    """Unit vectors (n, dim) of uint8 (n, 32, 32, 3) images, averaged over 6 weighted views."""
    out = []
    for start in range(0, len(images), extractor.batch_size):
        x = to_input(images[start : start + extractor.batch_size], extractor.device)
        total = 0
        for offset, view in translated_views(x).items():
            for image in (view, view.flip(3)):
                image = image.contiguous(memory_format=torch.channels_last)
                with torch.no_grad(), autocast(extractor.device, extractor.bf16):
                    embedded = extractor.network.embed(image).float().cpu().numpy()
                total = total + TRANSLATE_WEIGHTS[offset] * embedded
        out.append(total)
    vectors = np.concatenate(out)
    return l2_normalise(vectors - extractor.mean if extractor.center else vectors)


def alpha_qe(queries: np.ndarray, index: np.ndarray, expansion: Expansion, skip_self=False):
    """α-QE of unit `queries` (q, d) with their top `expansion.k` rows of unit `index` (n, d).

    `skip_self`: the queries are the index rows themselves (αDBA): row i is left out of its
    own neighbours (the sum already counts the query once).
    """
    extra = int(skip_self)
    sims, top = exact_top_k(queries, index, expansion.k + extra, np.arange(len(index)))
    if skip_self:
        keep = top != np.arange(len(queries))[:, None]
        keep[keep.all(1), -1] = False  # a row whose duplicates outrank it: drop the last
        sims, top = (a[keep].reshape(len(queries), -1) for a in (sims, top))
    return expand_vectors(queries, list(index[top]), list(sims), expansion.alpha)


def probe(extractor, images, labels, val_rows, train_rows, expansion, dba) -> list[dict]:
    """One result row per variant (see the module docstring)."""
    clock = Stopwatch()
    both = extractor.encode(list(images))
    flip, extractor.flip_tta = extractor.flip_tta, False
    try:
        one = extractor.encode(list(images[val_rows]))
    finally:
        extractor.flip_tta = flip
    translated = encode_translated(extractor, images[val_rows])
    X, Q, yx, yq = both[train_rows], both[val_rows], labels[train_rows], labels[val_rows]
    augmented = alpha_qe(X, X, dba, skip_self=True)
    rows = [
        ("encoding", Q, X),
        ("one view", one, X),
        ("queries +translate", translated, X),
        (f"α-QE {expansion}", alpha_qe(Q, X, expansion), X),
        (f"αDBA {dba} + α-QE {expansion}", alpha_qe(Q, augmented, expansion), augmented),
    ]
    results = []
    for name, queries, index in rows:
        measures = validation_retrieval(queries, yq, index, yx)
        results.append({"variant": name, "queries": len(queries), "index": len(index), **measures})
    results[0]["seconds"] = round(clock.seconds, 1)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="features/models/cnn", help="a cifarnet model directory")
    parser.add_argument("--expand", default="50:3", help="α-QE K:ALPHA (default 50:3)")
    parser.add_argument("--dba", default="10:3", help="αDBA K:ALPHA (default 10:3)")
    parser.add_argument("--out", default="var/reports/cnn_validation.jsonl")
    args = parser.parse_args(argv)
    from indexing.arrays import split_arrays
    from indexing.dataset_kinds import open_dataset

    extractor = load_extractor(args.model)
    if getattr(extractor, "arch", None) != "cifarnet":
        parser.error(f"{args.model} is not a cifarnet model (train one with `cbir train cnn`)")
    held_out = set(validation_ids(Path(args.model) / VALIDATION_FILE))
    arrays = split_arrays(open_dataset("cifar10", Settings.resolve()), "train")
    is_val = np.array([doc_id in held_out for doc_id in arrays.doc_ids])
    results = probe(
        extractor,
        arrays.images,
        arrays.labels,
        np.flatnonzero(is_val),
        np.flatnonzero(~is_val),
        Expansion.parse(args.expand),
        Expansion.parse(args.dba),
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as out:
        for row in results:
            row["model"] = extractor.fingerprint
            print(
                f"{row['variant']:<28} AP@100/min(R,100) {row['map_minRk_100']:.4f}  "
                f"P@10 {row['P_10']:.4f}  map_cut_100 {row['map_cut_100']:.5f}",
                flush=True,
            )
            out.write(json.dumps(row) + "\n")
    print(summary_line("cnn validation probe", len(arrays.labels), results[0]["seconds"]))


if __name__ == "__main__":
    main()
