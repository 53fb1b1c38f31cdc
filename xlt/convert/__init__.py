"""Importers of pretrained weights from other frameworks into xlt's orbax checkpoints.

Kept apart from xlt.models so the model has no dependency on any foreign format.
"""
