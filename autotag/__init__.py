"""autotag: train multi-label music auto-tagging models and tag audio with them.

Heavy modules (torch, lightning) are imported by the submodules that need them, so
`import autotag` and the dashboard's start-up stay fast.
"""

__version__ = "0.1.0"
