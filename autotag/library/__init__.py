"""Tagging a music library: folders of audio files tagged by a run into a file of rows.

`scan` finds the files (streamed, filtered by format); `decoders` decodes them in
parallel processes with an upload's limits; `store` writes a row per file as it is done
(SQLite, CSV or JSON lines) and knows which files a library already holds; `tag` is the
loop (`tag_library`) that ties them to a run's `serving.tagger.Tagger`.
"""

#: The most decoder processes a tagging may ask for (`tag --workers`, a library job's request).
#: Here, not in `job`, so that the CLI's parser has it without importing the job's modules.
MAX_WORKERS = 64
