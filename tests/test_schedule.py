import math

import pytest
import torch

from diffusion import (
    BASE_SCHEDULES,
    OBJECTIVES,
    PROTOCOLS,
    AbsorbingDiffusion,
    BaseSchedule,
    GuidedDenoiser,
    NoiseSchedule,
    ParameterError,
    ReverseProtocol,
    centred_information,
    check_step_size,
    d3pm_loss,
    make_base_schedule,
    mdlm_loss,
    token_information,
)


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
    with pytest.raises(ParameterError, match=r"^word_freq_lambda"):
        NoiseSchedule("mutual", 2048, lam)
    NoiseSchedule("mutual", 2048, lam, allow_nonmonotone=True)


def test_base_schedule_registry_maps_names_to_classes():
    assert list(BASE_SCHEDULES) == ["mutual", "linear", "cosine"]
    assert ", ".join(BASE_SCHEDULES) == "mutual, linear, cosine"
    for name, cls in BASE_SCHEDULES.items():
        assert issubclass(cls, BaseSchedule) and cls.name == name
        assert NoiseSchedule(name, 16).base == make_base_schedule(name, 16)


def test_protocol_and_objective_registries():
    assert {name: cls.name for name, cls in PROTOCOLS.items()} == {
        "exact": "exact",
        "official": "official",
    }
    assert issubclass(PROTOCOLS["official"], ReverseProtocol)
    assert dict(OBJECTIVES) == {"d3pm": d3pm_loss, "mdlm": mdlm_loss}
    h = torch.ones(4)
    for lam in (0.0, 0.3):
        for name in PROTOCOLS:
            diffusion = AbsorbingDiffusion(NoiseSchedule("mutual", 16, lam), 3, h, name)
            assert isinstance(diffusion.protocol, PROTOCOLS[name])
            assert diffusion.protocol.name == name
            assert diffusion.valid_bound == (lam == 0 or name == "exact")


@pytest.mark.parametrize("name", ["mutual", "linear", "cosine"])
def test_require_continuous_raises_for_linear_only(name):
    schedule = NoiseSchedule(name, 16)
    assert schedule.continuous == (name != "linear")
    if name != "linear":
        schedule.require_continuous()
        return
    with pytest.raises(ParameterError, match=r"^schedule 'linear' has no continuous") as info:
        schedule.require_continuous()
    assert info.value.parameter == "schedule"
    with pytest.raises(ParameterError):
        schedule.loss_weight(torch.tensor([0.5]))


def _bad_settings():
    """(parameter, a call that must raise a ParameterError for it)."""
    return [
        ("schedule", lambda: NoiseSchedule("sqrt")),
        ("num_steps", lambda: NoiseSchedule("mutual", 0)),
        ("word_freq_lambda", lambda: NoiseSchedule("mutual", 16, -0.1)),
        ("word_freq_lambda", lambda: NoiseSchedule("mutual", 16, 0.4)),
        ("h", lambda: AbsorbingDiffusion(NoiseSchedule("mutual", 16, 0.3), 3)),
        ("protocol", lambda: AbsorbingDiffusion(NoiseSchedule("mutual", 16), 3, None, "leaky")),
        ("step_size", lambda: check_step_size(16, 3)),
        ("step_size", lambda: check_step_size(16, 0)),
        ("weight", lambda: GuidedDenoiser(None, torch.zeros(1, 1, dtype=torch.bool), 3, -1.0)),
    ]


@pytest.mark.parametrize(("parameter", "call"), _bad_settings())
def test_bad_settings_raise_a_parameter_error_naming_the_parameter(parameter, call):
    with pytest.raises(ParameterError) as info:
        call()
    assert info.value.parameter == parameter
    assert str(info.value).startswith(parameter)
    assert "--" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_monotonicity_error_mentions_the_way_to_force_it():
    with pytest.raises(ParameterError, match="allow_nonmonotone=True") as info:
        NoiseSchedule("mutual", 16, 0.4)
    assert "1/π" in str(info.value)
