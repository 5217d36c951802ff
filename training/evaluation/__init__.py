"""Evaluation: running episodes (`episodes`), the policies that need no learning (`baselines`) and
the written results (`report`: tables, plots, videos). Episode records and their statistics are
`recore_nav.episodes`, shared with the simulator bridge."""
