"""Audio in: the one decoder (files or bytes to mono float32 at the model rate), the
sandboxed decoder process that uploads go through, and the log-mel front end.

Everything that reads audio (the feature cache, tagging, the dashboard) goes through
`decode`, so formats, down-mixing and resampling behave the same everywhere.
"""
