"""Execute the project's notebooks with parameters (nbclient), in place or into a copy.

    python notebooks/execute.py notebooks/compare_bovw_cnn.ipynb --set TSNE_PER_CLASS=50
    python notebooks/execute.py --all --in-place          # what `make notebooks` runs

Each notebook has one cell tagged `parameters` holding its defaults. Values given with
`--set NAME=VALUE` (VALUE is a Python literal; anything else is taken as a string) go into
a cell inserted right after it, as papermill does (papermill itself is not needed for
this). A cell that fails stops the run with the cell's error (nbclient's
CellExecutionError), so a test that executes a notebook fails when any cell fails.

Saved notebooks keep the injected cell (so a reader sees which values produced the
outputs; none is added when no value is given) and every source and output is cleared of
machine-specific paths (the repository root, $CBIR_HOME, $CBIR_CIFAR10 and the absolute
paths given as values), so the committed notebook reads the same on any machine.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def parameters_index(nb) -> int:
    """Index of the cell tagged `parameters`; ValueError when there is none or several."""
    found = [
        i
        for i, cell in enumerate(nb.cells)
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])
    ]
    if len(found) != 1:
        raise ValueError(
            f"a notebook needs exactly one cell tagged {PARAMETERS_TAG!r}, found {len(found)}"
        )
    return found[0]


def inject_parameters(nb, parameters: Mapping[str, Any]) -> None:
    """Insert a code cell assigning `parameters` after the parameters cell (in place).

    A cell injected by an earlier run (saved with the notebook) is replaced, as papermill
    does. Names must be assigned in the parameters cell: a typo would otherwise pass unnoticed.
    """
    import nbformat

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    at = parameters_index(nb)
    declared = _assigned_names(nb.cells[at].source)
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise ValueError(
            f"not parameters of this notebook: {', '.join(unknown)} (it has: {', '.join(sorted(declared))})"
        )
    lines = ["# Injected parameters"] + [
        f"{name} = {value!r}" for name, value in parameters.items()
    ]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(at + 1, cell)


def execute(
    path: Path,
    parameters: Mapping[str, Any],
    *,
    out: Path | None = None,
    timeout: int = 1800,
    scrub: Sequence[tuple[str, str]] = (),
):
    """Execute notebook `path` with `parameters`, in its own folder; write it to `out` if given.

    `scrub` pairs (text, replacement) are applied to every output and source after the
    run. Returns the executed notebook.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    parameters_index(nb)  # every notebook must have one
    if parameters:
        inject_parameters(nb, parameters)
    else:  # the defaults: drop values an earlier run injected
        nb.cells = [
            c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])
        ]
    env_path = os.environ.get("PYTHONPATH", "")
    # The kernel imports the project from this checkout, whatever is installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env_path) if p)
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        os.environ["PYTHONPATH"] = env_path
    scrub_paths(nb, scrub)
    if out is not None:
        nbformat.write(nb, out)
    return nb


def scrub_paths(nb, replacements: Sequence[tuple[str, str]]) -> None:
    """Replace each (text, replacement) in every cell source and text/plain/markdown output."""
    ordered = sorted(((t, r) for t, r in replacements if t), key=lambda p: -len(p[0]))

    def clean(text: str) -> str:
        for old, new in ordered:
            text = text.replace(old, new)
        return text

    for cell in nb.cells:
        cell.source = clean(cell.source)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = clean(output["text"])
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/") and isinstance(value, str):
                    output["data"][mime] = clean(value)
            if "traceback" in output:
                output["traceback"] = [clean(line) for line in output["traceback"]]
        cell.get("metadata", {}).pop("execution", None)


def machine_paths(parameters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Paths to clear from outputs: the repository root, the home and data directories given."""
    pairs = []
    for name, value in parameters.items():
        if isinstance(value, str) and os.path.isabs(value):
            pairs.append((value, f"${name}"))
    for name in ("CBIR_HOME", "CBIR_CIFAR10"):
        if os.environ.get(name) and os.path.isabs(os.environ[name]):
            pairs.append((os.environ[name], f"${name}"))
    pairs += [(str(REPO), "<repo>"), (str(Path.home()), "~")]
    return pairs


def _assigned_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to execute")
    parser.add_argument("--all", action="store_true", help="every notebooks/*.ipynb")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--in-place", action="store_true", help="save the executed notebook over the input"
    )
    parser.add_argument("--out-dir", type=Path, help="save executed copies here instead")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("*.ipynb")) if args.all else list(args.notebooks)
    if not paths:
        parser.error("name notebooks or pass --all")
    if not args.in_place and args.out_dir is None:
        parser.error("pass --in-place or --out-dir DIR")
    parameters = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: write NAME=VALUE")
        parameters[name.strip()] = _literal(value)
    for path in paths:
        out = path if args.in_place else args.out_dir / path.name
        if args.out_dir is not None:
            args.out_dir.mkdir(parents=True, exist_ok=True)
        print(f"executing {path.name} ...", flush=True)
        execute(
            path.resolve(),
            parameters,
            out=out,
            timeout=args.timeout,
            scrub=machine_paths(parameters),
        )
        print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
