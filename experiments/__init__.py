"""Studies: questions answered with the library, each with its command, results and status
(experiments/README.md). No library room imports a study."""
