"""``--compile``: the encoder compiled in place trains like the eager one, checkpoints the
same parameters under the same names, and a missing C++ compiler is one clear error."""

import shutil

import pytest
import torch

from common.errors import UsageError
from tests.test_trainer import make_trainer
from training.trainer import Trainer

HAS_CXX = any(shutil.which(c) for c in ("g++", "clang++", "c++"))


def trainer(tiny_bert, tokenizer, toy_txt, compile: bool) -> Trainer:
    """A tiny from-scratch trainer without dropout: compiled dropout draws other random
    numbers than eager dropout."""
    torch.manual_seed(0)
    made, _ = make_trainer(tiny_bert, tokenizer, toy_txt, bf16=False, compile=compile)
    for module in made.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return made


@pytest.mark.skipif(not HAS_CXX, reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_training_matches_eager(tiny_bert, tokenizer, toy_txt):
    eager = trainer(tiny_bert, tokenizer, toy_txt, compile=False)
    compiled = trainer(tiny_bert, tokenizer, toy_txt, compile=True)
    assert compiled.model.mlm.base_model._compiled_call_impl is not None
    for _ in range(3):  # the same batches and noise: the losses and weights follow each other
        a, b = eager.train_step(), compiled.train_step()
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    state_a, state_b = eager.model.state_dict(), compiled.model.state_dict()
    assert list(state_b) == list(state_a)  # no _orig_mod. prefix: the checkpoint is unchanged
    for name, value in state_a.items():
        torch.testing.assert_close(state_b[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_no_cxx_compiler_is_one_clear_error(tiny_bert, tokenizer, toy_txt, monkeypatch):
    monkeypatch.setenv("CXX", "my-c++")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match=r"--compile: .*no.*|--compile: .*none was found"):
        trainer(tiny_bert, tokenizer, toy_txt, compile=True)
    with pytest.raises(UsageError) as error:
        trainer(tiny_bert, tokenizer, toy_txt, compile=True)
    assert "tried my-c++, g++, clang++, c++" in str(error.value)


def test_a_compiler_that_does_not_work_is_one_line_before_the_run_folder(tmp_path, capsys,
                                                                          monkeypatch):  # fmt: skip
    """The up-front check compiles a one-line function for real; a toolchain that fails there
    (here torch.compile itself raising, as a compiler without Python headers does) stops
    main.py with one line before its output folder exists."""
    import main

    def broken(function):
        def run(*args):
            raise RuntimeError("CppCompileError: Python.h: No such file or directory\nmore")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--compile", "--output_dir", str(out), "--fitlog_dir", "", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.count("\n") == 0
    assert "--compile: torch.compile could not build" in err and "Python.h" in err
    assert not out.exists()


@pytest.mark.skipif(not HAS_CXX, reason="torch.compile on the CPU needs a C++ compiler")
def test_the_compile_probe_passes_with_a_working_compiler():
    from common.runtime import probe_compile

    probe_compile(torch.device("cpu"))
