import atexit
import os
import shutil
import tempfile

import pytest
from transformers import AutoTokenizer, BertConfig

from corpora import toy
from models import resolve_model_name

# Token-id caches of the test session (subprocesses included) go to a temporary folder.
CACHE = tempfile.mkdtemp(prefix="diffusionbert-test-cache-")
os.environ["DIFFUSIONBERT_CACHE"] = CACHE
atexit.register(shutil.rmtree, CACHE, True)


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
