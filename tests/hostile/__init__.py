"""The hostile-input suite: every probe that once broke the shipped product, kept as a regression test.

One file per surface (CLI options and files, run folders, checkpoints, event files, data
files, sweeps, the server). Each case feeds what an attacker or a careless user would,
and checks that it ends in exit status 2 (or a message on the page) and one line naming
the problem, with no traceback, nothing written and nothing lost.
"""
