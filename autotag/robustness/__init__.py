"""Robustness reports: how a run's tags hold up when its audio is perturbed.

`job` keeps a report's files in the run folder and starts, stops and watches its
background process (torch-free, for the CLI and the pages); `report` scores the clips
(`autotag.audio.perturb` makes the perturbed audio).
"""
