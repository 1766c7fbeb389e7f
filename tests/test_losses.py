"""Each loss against values worked out by hand with `math`, independent of torch's formulas."""

import math

import pytest
import torch

from mmpo import losses as L


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


C = torch.tensor([2.0, -1.0, 0.5])  # chosen log-ratios
R = torch.tensor([-3.0, 1.0, 0.5])  # rejected log-ratios
BETA = 0.1


def close(t: torch.Tensor, values: list[float]) -> None:
    assert torch.allclose(t, torch.tensor(values), atol=1e-6), (t, values)


def test_sigmoid_is_dpo():
    # h = 0.1 * (2 - -3) = 0.5, 0.1 * (-2) = -0.2, 0
    close(L.sigmoid(C, R, beta=BETA), [-logsig(0.5), -logsig(-0.2), math.log(2)])


def test_sigmoid_label_smoothing_is_conservative_dpo():
    eps = 0.2
    h = 0.5
    expected = -(0.8) * logsig(h) - eps * logsig(-h)
    assert L.sigmoid(C[:1], R[:1], beta=BETA, label_smoothing=eps).item() == pytest.approx(expected, abs=1e-6)


def test_hinge():
    close(L.hinge(C, R, beta=BETA), [0.5, 1.2, 1.0])
    close(L.hinge(torch.tensor([20.0]), torch.tensor([0.0]), beta=BETA), [0.0])


def test_ipo_summed_logratios():
    # (c - r - 1/(2*0.1))^2 = (5 - 5)^2, (-2 - 5)^2, (0 - 5)^2
    close(L.ipo(C, R, beta=BETA), [0.0, 49.0, 25.0])


def test_robust_matches_paper_and_reduces_to_dpo():
    eps = 0.1
    h = 0.5
    expected = ((1 - eps) * -logsig(h) + eps * logsig(-h)) / (1 - 2 * eps)
    assert L.robust(C[:1], R[:1], beta=BETA, label_smoothing=eps).item() == pytest.approx(expected, abs=1e-6)
    assert torch.allclose(L.robust(C, R, beta=BETA), L.sigmoid(C, R, beta=BETA))
    with pytest.raises(ValueError, match="label_smoothing"):
        L.robust(C, R, beta=BETA, label_smoothing=0.5)


def test_bco_pair_with_explicit_delta():
    delta = 0.05
    # rewards: chosen 0.2, -0.1, 0.05 ; rejected -0.3, 0.1, 0.05
    expected = [
        -logsig(0.2 - delta) - logsig(-(-0.3 - delta)),
        -logsig(-0.1 - delta) - logsig(-(0.1 - delta)),
        -logsig(0.05 - delta) - logsig(-(0.05 - delta)),
    ]
    close(L.bco_pair(C, R, beta=BETA, delta=delta), expected)


def test_copo_and_anchor():
    real = torch.tensor([1.0, 0.0])
    corrupted = torch.tensor([-4.0, 3.0])
    close(L.copo(real, corrupted, beta=BETA), [-logsig(0.5), -logsig(-0.3)])
    close(L.anchor(real, beta=BETA), [-logsig(0.1), math.log(2)])
    close(L.anchor(real, beta=BETA, delta=0.1), [math.log(2), -logsig(-0.1)])


def test_sft_is_length_normalised_nll():
    close(L.sft(torch.tensor([-10.0, -3.0]), torch.tensor([5, 3])), [2.0, 1.0])


def test_sft_token_reduction_pools_the_batch_tokens():
    """InternVL's token mean: (10 + 3) / (5 + 3) = 1.625 over the batch, against the
    paper's per-sequence mean (10/5 + 3/3) / 2 = 1.5; per example −logp·B/Σ|y|."""
    logps, lengths = torch.tensor([-10.0, -3.0]), torch.tensor([5, 3])
    close(L.sft(logps, lengths, "token"), [2.5, 0.75])
    assert L.sft(logps, lengths, "token").mean().item() == pytest.approx(1.625)
    assert L.sft(logps, lengths).mean().item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="sequence"):
        L.sft(logps, lengths, "mean")


def test_sft_token_reduction_is_cross_entropy_over_the_micro_batch():
    """The pooled term equals ``nn.CrossEntropyLoss`` over every response token of the
    batch (padding at -100), as InternVL's MPO trainer computes its nll_loss."""
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)  # (B, T, V)
    labels = torch.tensor([[3, 1, 4, 1, 5, -100], [9, 2, -100, -100, -100, -100]])  # response tokens, 5 and 2
    token_logps = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    summed = (token_logps * (labels != -100)).sum(-1)  # (B,)
    pooled = torch.nn.CrossEntropyLoss()(logits.reshape(-1, 11), labels.reshape(-1))
    assert L.sft(summed, (labels != -100).sum(-1), "token").mean().item() == pytest.approx(pooled.item(), abs=1e-6)


def test_gradient_signs():
    chosen = torch.tensor([0.3], requires_grad=True)
    rejected = torch.tensor([0.1], requires_grad=True)
    L.sigmoid(chosen, rejected, beta=BETA).sum().backward()
    assert chosen.grad.item() < 0 < rejected.grad.item()  # descent raises chosen, lowers rejected

    real = torch.tensor([0.2], requires_grad=True)
    corrupted = torch.tensor([0.4], requires_grad=True)
    L.copo(real, corrupted, beta=BETA).sum().backward()
    assert real.grad.item() < 0 < corrupted.grad.item()

    c = torch.tensor([-1.0], requires_grad=True)
    L.anchor(c, beta=BETA).sum().backward()
    assert c.grad.item() < 0

    c, r = torch.tensor([0.0], requires_grad=True), torch.tensor([0.0], requires_grad=True)
    L.bco_pair(c, r, beta=BETA, delta=0.0).sum().backward()
    assert c.grad.item() < 0 < r.grad.item()

    logps = torch.tensor([-5.0], requires_grad=True)
    L.sft(logps, torch.tensor([5])).sum().backward()
    assert logps.grad.item() == pytest.approx(-0.2)


def test_running_mean_pools_and_accumulates_then_restores():
    tracker = L.RewardRunningMean()
    # batch 1: pooled mean of [1, 3] and [-1, 1] = 1.0
    assert tracker.update(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 1.0])) == pytest.approx(1.0)
    # batch 2: pooled mean of [0] and [-4] = -2 ; cumulative mean of batch means (1 + -2)/2
    assert tracker.update(torch.tensor([0.0]), torch.tensor([-4.0])) == pytest.approx(-0.5)
    state = tracker.state_dict()
    restored = L.RewardRunningMean()
    restored.load_state_dict(state)
    # batch 3: mean 2 ; (1 - 2 + 2) / 3
    a = tracker.update(torch.tensor([2.0]), torch.tensor([2.0]))
    b = restored.update(torch.tensor([2.0]), torch.tensor([2.0]))
    assert a == b == pytest.approx(1.0 / 3.0)
    assert restored.count == 3


def test_parse_objective():
    assert L.parse_objective("dpo") == {"sigmoid": 1.0}
    assert L.parse_objective("mdpo") == {"sigmoid": 1.0, "copo": 1.0, "anchor": 1.0}
    assert L.parse_objective("mpo") == {"sigmoid": 0.8, "bco_pair": 0.2, "sft": 1.0}
    assert L.parse_objective("sigmoid:0.8, bco_pair:0.2,sft") == {"sigmoid": 0.8, "bco_pair": 0.2, "sft": 1.0}
    with pytest.raises(ValueError, match="unknown term"):
        L.parse_objective("sigmoid:1,kto:1")
    with pytest.raises(ValueError, match="not a number"):
        L.parse_objective("sigmoid:x")


def _logps(**extra):
    return L.LogProbs(
        policy_chosen=torch.tensor([-10.0, -8.0]),
        policy_rejected=torch.tensor([-12.0, -7.0]),
        chosen_lengths=torch.tensor([5, 4]),
        reference_chosen=torch.tensor([-11.0, -8.5]),
        reference_rejected=torch.tensor([-11.0, -7.5]),
        **extra,
    )


def test_mdpo_objective_is_unit_weighted_sum():
    lp = _logps(policy_corrupted=torch.tensor([-14.0, -9.0]), reference_corrupted=torch.tensor([-13.0, -9.5]))
    loss, metrics = L.compute_objective(L.parse_objective("mdpo"), lp, L.ObjectiveParams(beta=0.1))
    # ratios: chosen [1, 0.5], rejected [-1, 0.5], corrupted [-1, 0.5]
    dpo = (-logsig(0.2) - logsig(0.0)) / 2
    copo = (-logsig(0.2) - logsig(0.0)) / 2
    anc = (-logsig(0.1) - logsig(0.05)) / 2
    assert loss.item() == pytest.approx(dpo + copo + anc, abs=1e-6)
    assert metrics["image/accuracies"] == 0.5
    assert metrics["rewards/margins"] == pytest.approx(0.1)


def test_mpo_objective_weights_and_delta():
    tracker = L.RewardRunningMean()
    loss, metrics = L.compute_objective(
        L.parse_objective("mpo"), _logps(), L.ObjectiveParams(beta=0.1, bco_running_mean=tracker)
    )
    # rewards chosen [0.1, 0.05], rejected [-0.1, 0.05]; pooled mean 0.025
    delta = 0.025
    dpo = (-logsig(0.2) - logsig(0.0)) / 2
    bco = (
        -logsig(0.1 - delta) - logsig(-(-0.1 - delta)) - logsig(0.05 - delta) - logsig(-(0.05 - delta))
    ) / 2
    sft = (10 / 5 + 8 / 4) / 2
    assert metrics["bco/delta"] == pytest.approx(delta)
    assert loss.item() == pytest.approx(0.8 * dpo + 0.2 * bco + 1.0 * sft, abs=1e-6)


def test_objective_with_token_pooled_sft():
    lp = L.LogProbs(policy_chosen=torch.tensor([-10.0, -3.0]), policy_rejected=torch.tensor([-1.0, -1.0]),
                    chosen_lengths=torch.tensor([5, 3]))
    loss_seq, _ = L.compute_objective({"sft": 1.0}, lp, L.ObjectiveParams())
    loss_tok, metrics = L.compute_objective({"sft": 1.0}, lp, L.ObjectiveParams(sft_reduction="token"))
    assert loss_seq.item() == pytest.approx((10 / 5 + 3 / 3) / 2)
    assert loss_tok.item() == pytest.approx((10 + 3) / (5 + 3)) and metrics["loss/sft"] == pytest.approx(1.625)


def test_copo_without_corrupted_logps_is_an_error():
    with pytest.raises(ValueError, match="corrupted image"):
        L.compute_objective({"copo": 1.0}, _logps(), L.ObjectiveParams())
