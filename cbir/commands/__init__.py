"""One module per subcommand: NAME, HELP, add_arguments(parser, parent), run(args, settings).

Modules import heavy libraries inside `run` only, so `cbir --help` stays fast.
"""

COMMANDS = (
    "config",
    "dataset",
    "train",
    "index",
    "search",
    "evaluate",
    "tune_fusion",
    "trec_eval",
    "instance_eval",
    "serve",
    "bench",
    "duplicates",
)
