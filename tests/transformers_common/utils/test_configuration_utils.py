"""Stand-in for transformers' ``tests/utils/test_configuration_utils.py`` (not in the 5.25.0 sdist); this project's
own code.

``config_common_kwargs``: a non-default value for each common field of transformers 5.25.0's ``PreTrainedConfig``,
which ``ConfigTester.check_config_arguments_init`` passes to the config class and reads back.
"""

config_common_kwargs = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}
