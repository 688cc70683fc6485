"""The files autotag's processes share, and their processes: the layer everything else stands on.

`files` (locked, atomic, bounded reads and writes), `procs` (a process by pid and start
time), `job` (a status file and the life of a run's, sweep's or report's process),
`run_folder` (a run's layout and status), `checkpoints` (which of a run's checkpoints).
The trainer writes these and the managers, pages and CLI read them; nothing here knows
of training, sweeps or the dashboard.
"""
