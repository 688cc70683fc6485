"""Runs: the run folder on disk (the source of truth about every run), the launcher and
queue of background trainers, the pre-warmed trainer, process facts, checkpoints that
load, live curves from TensorBoard event files and the runs table.
"""
