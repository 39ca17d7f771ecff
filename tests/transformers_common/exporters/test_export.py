"""Stand-in for transformers' ``tests/exporters/test_export.py`` (not in the 5.25.0 sdist); this project's own code.

``ModelTesterMixin`` derives from ``ExportTesterMixin``, which in transformers' repository adds the ``torch.export``
tests. They are not run here: HuBERT-ECG's export path (ONNX) is tested in tests/test_export.py.
"""


class ExportTesterMixin:
    pass
