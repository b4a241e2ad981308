"""One module per `cbir` subcommand: the stage function the command line (and tests) call."""
