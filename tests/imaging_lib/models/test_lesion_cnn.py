"""The demo architecture: output shape, size, and exact batch-norm folding."""

from __future__ import annotations

import pytest
import torch

from imaging_lib.models.lesion_cnn import LesionCNN, fold_batch_norm


def test_outputs_two_logits_that_are_one_score():
    model = LesionCNN(width=8).eval()
    logits = model(torch.rand(4, 3, 224, 224))
    assert logits.shape == (4, 2)
    torch.testing.assert_close(logits[:, 0], -logits[:, 1])
    assert model.lesion_map(torch.rand(1, 3, 224, 224)).shape == (1, 1, 14, 14)


def test_parameter_count_is_well_under_five_million():
    assert sum(p.numel() for p in LesionCNN().parameters()) < 100_000


def test_only_two_classes():
    with pytest.raises(ValueError, match="num_classes must be 2"):
        LesionCNN(num_classes=3)


def test_folding_batch_norm_keeps_the_outputs():
    torch.manual_seed(0)
    trained = LesionCNN(width=8, batch_norm=True)
    trained.train()
    with torch.no_grad():  # give the running statistics non-trivial values
        for _ in range(3):
            trained(torch.rand(8, 3, 224, 224) * 2)
        for module in trained.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    trained.eval()
    folded = fold_batch_norm(trained)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(4, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), trained(x), rtol=1e-4, atol=1e-4)
