# transformers' common model and configuration tests, vendored for tests/test_modeling_hubert_ecg.py.
#
# test_modeling_common.py and test_configuration_common.py: transformers 5.25.0 source distribution (PyPI sdist
# transformers-5.25.0.tar.gz, transformers-5.25.0/tests/), Apache License 2.0, unmodified below their vendoring
# header (each header gives the sha256 of the original file).
#
# The sdist does not ship the three sibling modules those files import; the ones here are this project's own
# stand-ins, not copies:
#   exporters/test_export.py      ExportTesterMixin, empty: transformers' torch.export tests are not run
#   generation/test_utils.py      GenerationTesterMixin, empty: HuBERT-ECG does not generate
#   utils/test_configuration_utils.py  config_common_kwargs: non-default values of PreTrainedConfig's common fields
#
# To update: replace the two files from the new version's sdist (keep the header, update the version and sha256) and
# check the stand-ins against what they import.
#
# This file must stay free of statements: ConfigTester's module executes it (direct_transformers_import).
