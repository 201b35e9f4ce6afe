"""Errors for bad settings: they name the parameter, never a command-line flag."""

from __future__ import annotations


class ParameterError(ValueError):
    """A setting of ``parameter`` is invalid. The message starts with the parameter's name.

    Args:
        parameter: the name of the offending parameter, e.g. ``"step_size"``.
        message: what is wrong; prefixed with ``"<parameter>: "`` unless it starts with the name.
    """

    def __init__(self, parameter: str, message: str):
        if not message.startswith(parameter):
            message = f"{parameter}: {message}"
        super().__init__(message)
        self.parameter = parameter


def check_step_size(num_steps: int, step_size: int) -> None:
    """Raise ParameterError("step_size") unless ``step_size`` ≥ 1 divides ``num_steps``."""
    if step_size < 1 or num_steps % step_size:
        raise ParameterError(
            "step_size",
            f"step_size {step_size} does not divide num_steps {num_steps}: pass a divisor of "
            f"{num_steps} (e.g. {max(1, num_steps // 128)})",
        )
