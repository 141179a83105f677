"""Direct tests of toolkit.integrity: file checksums and atomic folder replacement."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from toolkit import integrity


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(bytes(range(256)) * (3 << 12))  # 3 MiB: head, sampled blocks and gaps
    (root / "sub" / "small.txt").write_text("hello")
    return root


def test_manifest_records_every_file_and_a_good_folder_passes(folder):
    files = integrity.folder_manifest(folder)
    assert sorted(files) == ["big.bin", "sub/small.txt"]
    assert files["sub/small.txt"]["size"] == 5
    for name, record in files.items():
        assert integrity.check_file(folder / name, record, full=False) is None
        assert integrity.check_file(folder / name, record, full=True) is None


def test_a_flipped_byte_is_caught(folder):
    record = integrity.folder_manifest(folder)["big.bin"]
    path = folder / "big.bin"
    for offset in (10, (3 << 20) - 10):  # in the first MiB and in the last sampled block
        _flip(path, offset)
        assert integrity.check_file(path, record, full=False) == "does not match its checksum"
        assert integrity.check_file(path, record, full=True) == "does not match its checksum"
        _flip(path, offset)
    assert integrity.check_file(path, record, full=False) is None
    _flip(path, 2 << 20)  # between two sampled 64 KiB blocks: only the full SHA-256 sees it
    assert integrity.check_file(path, record, full=False) is None
    assert integrity.check_file(path, record, full=True) == "does not match its checksum"


def test_a_missing_or_resized_file_is_named(folder):
    record = integrity.folder_manifest(folder)["sub/small.txt"]
    (folder / "sub" / "small.txt").write_text("hello!")
    assert integrity.check_file(folder / "sub" / "small.txt", record, full=False) == "is 6 bytes, expected 5"
    (folder / "sub" / "small.txt").unlink()
    assert integrity.check_file(folder / "sub" / "small.txt", record, full=True) == "is missing"


def test_tensor_digests_catch_a_changed_tensor(tmp_path):
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4)}
    meta = integrity.digests(tensors)
    assert integrity.has_digests(meta) and not integrity.has_digests({"format": "pt"})
    integrity.verify_tensors(tmp_path, tensors, meta, "fix it")
    with pytest.raises(ValueError, match=r"tensor 'a' does not match the SHA-256.*fix it"):
        integrity.verify_tensors(tmp_path, {**tensors, "a": tensors["a"].reshape(3, 2)}, meta, "fix it")
    with pytest.raises(ValueError, match=r"tensor 'b' has 1 non-finite"):
        integrity.check_finite_tensors({"b": torch.tensor([1.0, float("nan")])}, where="here")


def _make(parent: Path, name: str, text: str) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "f.txt").write_text(text)
    return folder


def test_replace_folder_replaces_an_existing_folder(tmp_path):
    target = _make(tmp_path, "target", "old")
    assert integrity.replace_folder(_make(tmp_path, ".new", "new"), target)
    assert (target / "f.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # nothing moved aside is left
    assert integrity.replace_folder(_make(tmp_path, ".new", "first"), tmp_path / "fresh")  # no folder there yet
    assert (tmp_path / "fresh" / "f.txt").read_text() == "first"


def test_replace_folder_keeps_a_good_existing_folder(tmp_path):
    target = _make(tmp_path, "target", "good")
    new = _make(tmp_path, ".new", "new")
    seen = []
    assert integrity.replace_folder(new, target, keep_existing=lambda p: seen.append(p) or True) is False
    assert seen == [target] and (target / "f.txt").read_text() == "good" and new.is_dir()  # the caller deletes new
    assert integrity.replace_folder(new, target, keep_existing=lambda p: False)
    assert (target / "f.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_replace_folder_puts_the_old_folder_back_when_the_rename_fails(tmp_path):
    target = _make(tmp_path, "target", "old")
    with pytest.raises(FileNotFoundError):
        integrity.replace_folder(tmp_path / "no-such-folder", target)
    assert (target / "f.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]
