"""Hyperparameter sweeps: Optuna searches a space of config fields, each trial an ordinary run.

`space` reads the searched fields (`FIELD=lo:hi[:log]`, `FIELD=a,b,c`, conditions with
`@`), `folder` declares a sweep's folder, `driver` is the loop that asks the study for
trials, launches them through the runs layer's queue, records their trainers' reports,
answers whether to prune, and tells the study their results; `study` builds the study's
storage, sampler and pruner alike in every worker; `manager` starts, lists, stops and
resumes sweeps. The trainer's side of a trial (its report after each validation, the
verdict it waits for) is `autotag.training.trial`, used by `autotag.training.callbacks.PruneTrial`.
"""
