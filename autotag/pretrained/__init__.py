"""Published taggers: a catalogue of trained weights that others released, each importable as an
ordinary completed run, so a user gets real music tags before training anything (see catalogue)."""
