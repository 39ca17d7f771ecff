"""transformers' common model and configuration tests (``ModelTesterMixin``, ``ConfigTester``) on the HuBERT-ECG
models, set up as transformers' own Hubert model tests are (a tester with a tiny config and random inputs).

The mixins are vendored from transformers 5.25.0's source distribution in ``tests/transformers_common/`` (see its
``__init__.py``). Every test of the mixin runs unless it is skipped below with the reason it does not apply; the
tests of other hardware (GPU, flash attention, multi-GPU) skip themselves through transformers' ``require_*``
decorators.
"""

import math
import unittest
from unittest import mock

import pytest
import torch
from transformers.testing_utils import torch_device

import transformers_common.test_modeling_common as common

from hubert_ecg import (
    HuBERTECGConfig,
    HuBERTECGForPreTraining,
    HuBERTECGForSequenceClassification,
    HuBERTECGModel,
)
from transformers_common.test_configuration_common import ConfigTester
from transformers_common.test_modeling_common import (
    ModelTesterMixin,
    floats_tensor,
    ids_tensor,
    random_attention_mask,
)


class HuBERTECGModelTester:
    """A tiny HuBERT-ECG: hidden 32, 2 layers, a 3-layer conv stack of 32 channels (receptive field 30 samples, hop 16)
    and ``input_values`` of 400 samples (24 frames)."""

    def __init__(
        self,
        parent,
        batch_size=4,
        seq_length=400,
        is_training=True,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        conv_dim=(32, 32, 32),
        conv_kernel=(10, 3, 3),
        conv_stride=(4, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        vocab_sizes=(7, 11),
        num_labels=3,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.conv_dim = conv_dim
        self.conv_kernel = conv_kernel
        self.conv_stride = conv_stride
        self.num_conv_pos_embeddings = num_conv_pos_embeddings
        self.num_conv_pos_embedding_groups = num_conv_pos_embedding_groups
        self.classifier_proj_size = classifier_proj_size
        self.vocab_sizes = vocab_sizes
        self.num_labels = num_labels

        length = seq_length
        for kernel, stride in zip(conv_kernel, conv_stride):
            length = (length - kernel) // stride + 1
        self.output_seq_length = length
        self.encoder_seq_length = length

    def get_config(self):
        return HuBERTECGConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            conv_dim=self.conv_dim,
            conv_kernel=self.conv_kernel,
            conv_stride=self.conv_stride,
            num_conv_pos_embeddings=self.num_conv_pos_embeddings,
            num_conv_pos_embedding_groups=self.num_conv_pos_embedding_groups,
            classifier_proj_size=self.classifier_proj_size,
            vocab_sizes=self.vocab_sizes,
            num_labels=self.num_labels,
            # SpecAugment while fine-tuning (off by default): exercised by the training tests, and the classifier
            # then trains every parameter (masked_spec_embed included)
            finetune_mask_time_prob=0.2,
        )

    def prepare_config_and_inputs(self):
        input_values = floats_tensor([self.batch_size, self.seq_length], scale=1.0)
        attention_mask = random_attention_mask([self.batch_size, self.seq_length])
        return self.get_config(), input_values, attention_mask

    def prepare_config_and_inputs_for_common(self):
        config, input_values, attention_mask = self.prepare_config_and_inputs()
        return config, {"input_values": input_values, "attention_mask": attention_mask}

    def create_and_check_model(self, config, input_values, attention_mask):
        model = HuBERTECGModel(config).to(torch_device).eval()
        result = model(input_values, attention_mask=attention_mask)
        self.parent.assertEqual(
            result.last_hidden_state.shape, (self.batch_size, self.output_seq_length, self.hidden_size)
        )
        self.parent.assertEqual(config.num_frames(self.seq_length), self.output_seq_length)

    def create_and_check_batch_inference(self, config, input_values, *args):
        """Right-padded rows give what the unpadded rows give (padding ignored by the frame mask)."""
        config.feat_extract_norm = "layer"  # group norm over time sees the padding (as in transformers' test)
        model = HuBERTECGModel(config).to(torch_device).eval()
        input_values = input_values[:3].clone()
        attention_mask = torch.ones(input_values.shape, device=torch_device, dtype=torch.long)
        lengths = [input_values.shape[-1] // i for i in (4, 2, 1)]
        for i, length in enumerate(lengths):
            input_values[i, length:] = 0.0
            attention_mask[i, length:] = 0
        batch = model(input_values, attention_mask=attention_mask).last_hidden_state
        for i, length in enumerate(lengths):
            alone = model(input_values[i : i + 1, :length]).last_hidden_state
            torch.testing.assert_close(batch[i : i + 1, : alone.shape[1]], alone, atol=1e-4, rtol=1e-4)

    def check_seq_classifier_loss(self, config, input_values, *args):
        model = HuBERTECGForSequenceClassification(config).to(torch_device).eval()
        input_values = input_values[:3].clone()
        attention_mask = torch.ones(input_values.shape, device=torch_device, dtype=torch.long)
        for i, length in enumerate(input_values.shape[-1] // i for i in (4, 2, 1)):
            input_values[i, length:] = 0.0
            attention_mask[i, length:] = 0
        labels = ids_tensor((3,), config.num_labels)
        masked = model(input_values, attention_mask=attention_mask, labels=labels).loss.item()
        unmasked = model(input_values, labels=labels).loss.item()
        self.parent.assertTrue(math.isfinite(masked) and math.isfinite(unmasked))
        self.parent.assertNotEqual(masked, unmasked)

    def check_seq_classifier_training(self, config, input_values, *args):
        model = HuBERTECGForSequenceClassification(config).to(torch_device).train()
        model.freeze_base_model()
        labels = ids_tensor((input_values.shape[0],), config.num_labels)
        loss = model(input_values, labels=labels).loss
        self.parent.assertTrue(torch.isfinite(loss).item())
        loss.backward()
        self.parent.assertIsNotNone(model.classifier.weight.grad)
        self.parent.assertTrue(all(p.grad is None for p in model.hubert_ecg.parameters()))

    def check_pretraining_loss(self, config, input_values, attention_mask):
        model = HuBERTECGForPreTraining(config).to(torch_device).train()
        labels = torch.stack([ids_tensor((input_values.shape[0], self.output_seq_length), v) for v in config.vocab_sizes], 1)
        outputs = model(input_values, attention_mask=attention_mask, labels=labels)
        self.parent.assertEqual([t.shape[-1] for t in outputs.logits], list(config.vocab_sizes))
        self.parent.assertTrue(outputs.mask_time_indices.any())
        outputs.loss.backward()

    def check_labels_out_of_vocab(self, config, input_values, *args):
        model = HuBERTECGForPreTraining(config).to(torch_device).eval()
        labels = torch.stack([ids_tensor((input_values.shape[0], self.output_seq_length), v) for v in config.vocab_sizes], 1)
        labels[0, 1, 3] = config.vocab_sizes[1]
        with pytest.raises(ValueError, match=rf"codebook 1 .*{config.vocab_sizes[1]}"):
            model(input_values, labels=labels)


class HuBERTECGModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (HuBERTECGModel, HuBERTECGForSequenceClassification, HuBERTECGForPreTraining)
    pipeline_model_mapping = {}
    # no token embeddings to resize: the input is an ECG (input_values), not tokens
    test_resize_embeddings = False
    # the mixin runs this check only for models it dates from 2023 on (a copyright line this package's files lack)
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        # The mixin picks what to test from transformers' own model-name mappings (base model: no loss to train;
        # sequence classifier: labels, problem types, mismatched heads); HuBERT-ECG registers its classes with the
        # Auto classes at runtime, which does not add them there: add them to the vendored module's view only.
        for name, class_name in (
            ("MODEL_MAPPING_NAMES", "HuBERTECGModel"),
            ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", "HuBERTECGForSequenceClassification"),
            ("MODEL_FOR_PRETRAINING_MAPPING_NAMES", "HuBERTECGForPreTraining"),
        ):
            patcher = mock.patch.object(common, name, {**getattr(common, name), "hubert_ecg": class_name})
            patcher.start()
            self.addCleanup(patcher.stop)
        self.model_tester = HuBERTECGModelTester(self)
        self.config_tester = ConfigTester(self, config_class=HuBERTECGConfig, has_text_modality=False, hidden_size=37,
                                          num_attention_heads=1, num_conv_pos_embedding_groups=1)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels and model_class is HuBERTECGForPreTraining:
            tester = self.model_tester
            inputs_dict["labels"] = torch.zeros(
                (tester.batch_size, len(tester.vocab_sizes), tester.output_seq_length), dtype=torch.long,
                device=torch_device,
            )
        return inputs_dict

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        self.model_tester.create_and_check_model(*self.model_tester.prepare_config_and_inputs())

    def test_batched_inference_ignores_padding(self):
        self.model_tester.create_and_check_batch_inference(*self.model_tester.prepare_config_and_inputs())

    def test_seq_classifier_loss_inference(self):
        self.model_tester.check_seq_classifier_loss(*self.model_tester.prepare_config_and_inputs())

    def test_seq_classifier_train(self):
        self.model_tester.check_seq_classifier_training(*self.model_tester.prepare_config_and_inputs())

    def test_pretraining_loss(self):
        self.model_tester.check_pretraining_loss(*self.model_tester.prepare_config_and_inputs())

    def test_labels_out_of_vocab(self):
        self.model_tester.check_labels_out_of_vocab(*self.model_tester.prepare_config_and_inputs())

    @unittest.skip(reason="no input embeddings: the input is an ECG (input_values), not tokens")
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skip(
        reason="makes the base model's weights mismatch through vocab_size (token embeddings), on which no HuBERT-ECG "
        "weight depends (ECG input); a mismatched classifier head is tested by test_can_load_ignoring_mismatched_shapes"
    )
    def test_load_with_mismatched_shapes(self):
        pass


@pytest.mark.parametrize("name", ["test_modeling_common.py", "test_configuration_common.py"])
def test_vendored_common_tests_are_unmodified(name):
    """Below its vendoring header, each vendored file is transformers 5.25.0's, byte for byte (sha256 in the header)."""
    import hashlib
    import re
    from pathlib import Path

    text = (Path(__file__).parent / "transformers_common" / name).read_bytes()
    header, _, original = text.partition(b"# --- end of vendoring header ---\n")
    digest = re.search(rb"sha256 ([0-9a-f]{64})", header).group(1).decode()
    assert hashlib.sha256(original).hexdigest() == digest
