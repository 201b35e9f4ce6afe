import math

import pytest
import torch

from diffusion import NoiseSchedule, centred_information, token_information


def test_frequent_tokens_stay_longer():
    schedule = NoiseSchedule("mutual", 100, 0.3)
    a = schedule.alpha_bar(torch.tensor([0.5]), torch.tensor([[0.5, -0.5]]))[0]
    assert a[0] > a[1]


def test_largest_valid_lambda_is_accepted_and_monotone():
    schedule = NoiseSchedule("mutual", 2048, 0.318)
    u = torch.arange(2049) / 2048
    a = schedule.alpha_bar(u, torch.tensor([[-1.0, 1.0]]).expand(2049, 2))
    assert (a[1:] <= a[:-1] + 1e-12).all()


def test_unknown_schedule_named():
    with pytest.raises(ValueError, match="schedule 'sqrt' is unknown"):
        NoiseSchedule("sqrt")


def test_token_information_and_centring():
    counts = torch.tensor([5, 0, 99, 9])
    h = token_information(counts, pad_id=0)
    assert h[0] == 0 and h[2] == pytest.approx(1.0)
    assert h[3].item() == pytest.approx(math.log(10) / math.log(100))
    x0 = torch.tensor([[2, 3, 1, 0]])
    mask = torch.tensor([[True, True, True, False]])
    w = centred_information(h, x0, mask)
    mean = (h[2] + h[3] + h[1]) / 3
    assert torch.allclose(w[0, :3], torch.stack([h[2], h[3], h[1]]) - mean)
    assert w[0, 3] == 0


@pytest.mark.parametrize("lam", [0.33, 0.5])
def test_lambda_that_breaks_monotonicity_is_rejected(lam):
    with pytest.raises(ValueError, match="word_freq_lambda"):
        NoiseSchedule("mutual", 2048, lam)
    NoiseSchedule("mutual", 2048, lam, allow_nonmonotone=True)
