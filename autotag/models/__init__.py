"""Models: `specs` names each architecture's paper input (mels, chunk length) without
importing torch, so the config schema and the dashboard stay light; `architectures`
builds the networks. To add a model, add its spec and its builder.
"""
