"""Using a trained run: the tagger (best checkpoint to tag probabilities over a clip and
over time), export to TorchScript or ONNX with the front end inside, and the CLI's
JSON/CSV output.
"""
