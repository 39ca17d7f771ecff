"""Stand-in for transformers' ``tests/generation/test_utils.py`` (not in the 5.25.0 sdist); this project's own code.

``ModelTesterMixin`` checks that testers of generative models derive from ``GenerationTesterMixin``; HuBERT-ECG
models do not generate, so the class only needs to exist.
"""


class GenerationTesterMixin:
    pass
