import atexit
import os
import shutil
import tempfile

import pytest
import torch
from transformers import AutoTokenizer, BertConfig

from corpora import toy
from models import resolve_model_name

# Token-id caches of the test session (subprocesses included) go to a temporary folder.
CACHE = tempfile.mkdtemp(prefix="diffusionbert-test-cache-")
os.environ["DIFFUSIONBERT_CACHE"] = CACHE
atexit.register(shutil.rmtree, CACHE, True)

CUDA = pytest.param(
    "cuda",
    marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ],
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cuda: the CUDA case of a device-following test (tools/gpu_check.sh runs these)"
    )


@pytest.fixture(params=["cpu", CUDA])
def device(request) -> torch.device:
    """The device a tensor test runs on: the CPU always, CUDA where a device is visible (the
    CUDA case is skipped, not failed, without one)."""
    return torch.device(request.param)


def on_device(obj, device: torch.device):
    """``obj`` with each of its tensor attributes moved to ``device`` (a stand-in network's
    fixed tables); returns ``obj``."""
    for name, value in vars(obj).items():
        if isinstance(value, torch.Tensor):
            setattr(obj, name, value.to(device))
    return obj


@pytest.fixture(scope="session")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model_name("minilm-l6"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, tokenizer):
    """A folder with a 2-layer, hidden-32 BERT config and the bert-base-uncased tokenizer."""
    path = tmp_path_factory.mktemp("tiny-bert")
    BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    ).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def toy_txt(tmp_path_factory):
    """400 toy-grammar sentences as a .txt file."""
    path = tmp_path_factory.mktemp("data") / "toy.txt"
    path.write_text("\n".join(toy.sample(400, seed=7)) + "\n")
    return path
