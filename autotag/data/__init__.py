"""Data sets: the format readers (plain CSV folders, MagnaTagATune, MTG-Jamendo), the
checks a data set passes before training, the built-in demo set, the log-mel feature
cache and the Lightning DataModule that draws training chunks from it.

To add a data format, write a reader in `formats` that returns a `TaggedDataset` and
register it in `formats.load_dataset`.
"""
