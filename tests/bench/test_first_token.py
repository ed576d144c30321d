"""The page-cache helpers of `ggufsm bench runtime --first-token`: residency is read, not assumed."""

from __future__ import annotations

from ggufsm.reference.bench.first_token import evict, resident_share, warm


def test_a_file_read_through_is_wholly_resident(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (3 << 20))
    warm(path)
    assert resident_share(path) == 1.0


def test_eviction_never_raises_and_the_share_stays_a_share(tmp_path):
    # How much DONTNEED drops depends on the filesystem (tmpfs keeps everything): the bench prints the
    # share it reads after the eviction rather than trusting it, and this checks only that it is one.
    path = tmp_path / "f.bin"
    path.write_bytes(b"y" * (1 << 20))
    evict(path)
    assert 0.0 <= resident_share(path) <= 1.0


def test_an_empty_file_counts_as_resident(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    assert resident_share(path) == 1.0
