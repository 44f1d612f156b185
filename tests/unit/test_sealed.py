"""The sealed backup format: round trips, damage detection, compression, bounded memory."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import random
import shutil
import struct
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.errors import IntegrityError
from coffer.storage.sealed import (
    FRAME_HEADER_SIZE,
    FRAME_SIZE,
    HEADER_SIZE,
    new_data_key,
    seal,
    unseal,
)

KEY = new_data_key()
CONTEXT = b"backup-7f3a"
SMALL_FRAME = 256
READ_PIECE = 97
TEXT = b"INSERT INTO orders VALUES (42, 'pending', '2026-01-01 12:00:00');\n"


def realistic(size: int, seed: int = 0) -> bytes:
    """Half random bytes, half repetitive text, interleaved in blocks."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(1000)
        out += TEXT * 15
    return bytes(out[:size])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def sealed(data: bytes, *, frame_size: int = SMALL_FRAME, context: bytes = CONTEXT) -> bytes:
    return b"".join(seal([data], KEY, context, frame_size=frame_size))


def read_all(stored: bytes, *, key: bytes = KEY, context: bytes = CONTEXT) -> bytes:
    reader = unseal(split(stored, [13, 500, 501, 4096]), key, context)
    out = bytearray()
    while piece := reader.read(READ_PIECE):
        out += piece
    return bytes(out)


def read_until_damage(stored: bytes, **kwargs: bytes) -> tuple[bytes, IntegrityError]:
    """What a reader hands out before it raises, and the error (which must come)."""
    reader = unseal([stored], kwargs.get("key", KEY), kwargs.get("context", CONTEXT))
    out = bytearray()
    with pytest.raises(IntegrityError) as caught:
        while piece := reader.read(READ_PIECE):
            out += piece
    with pytest.raises(IntegrityError):
        reader.read(1)  # the failure is sticky: never a quiet end-of-file afterwards
    return bytes(out), caught.value


def frames(stored: bytes) -> tuple[bytes, list[bytes]]:
    """The header and the frames, split by their documented layout."""
    header, rest, out = stored[:HEADER_SIZE], stored[HEADER_SIZE:], []
    while rest:
        _, length = struct.unpack(">BI", rest[:FRAME_HEADER_SIZE])
        out.append(rest[: FRAME_HEADER_SIZE + length])
        rest = rest[FRAME_HEADER_SIZE + length :]
    return header, out


def authenticated_prefix(stored: bytes, frame_index: int) -> int:
    """How much plaintext the frames before ``frame_index`` release on their own."""
    header, parts = frames(stored)
    released, _ = read_until_damage(header + b"".join(parts[:frame_index]))
    return len(released)


def assert_damage_detected(original: bytes, stored: bytes, damaged: bytes, at: int) -> None:
    """Reading ``damaged`` (``stored`` altered at offset ``at``) fails, and hands out only a
    prefix of the plaintext that the frames before the damaged one authenticate."""
    released, error = read_until_damage(damaged)
    assert "tampered with or truncated" in error.message
    assert CONTEXT.decode() in error.message
    assert original.startswith(released)
    _, parts = frames(stored)
    ends, offset = [], HEADER_SIZE
    for part in parts:
        offset += len(part)
        ends.append(offset)
    frame_index = next((i for i, end in enumerate(ends) if at < end), len(parts))
    if at < HEADER_SIZE:
        assert released == b""
    else:
        assert len(released) <= authenticated_prefix(stored, frame_index)


DAMAGE_DATA = realistic(3000, seed=1)
DAMAGE_STORED = sealed(DAMAGE_DATA)


def test_damage_fixture_spans_several_frames() -> None:
    _, parts = frames(DAMAGE_STORED)
    assert len(parts) >= 4
    assert read_all(DAMAGE_STORED) == DAMAGE_DATA


@pytest.mark.parametrize(
    "data",
    [b"", b"x", realistic(10_000), os.urandom(FRAME_SIZE), os.urandom(3 * FRAME_SIZE + 12345)],
    ids=["empty", "tiny", "text", "one-frame-of-random", "multi-frame-random"],
)
def test_round_trip_with_default_frames(data: bytes) -> None:
    stream = seal(split(data, [1, 65536, 999_999]), KEY, CONTEXT)
    stored = b"".join(stream)
    assert read_all(stored) == data
    assert stream.stats.raw_bytes == len(data)
    assert stream.stats.stored_bytes == len(stored)
    assert stream.stats.sha256 == hashlib.sha256(stored).hexdigest()


def test_payload_exactly_filling_frames_round_trips() -> None:
    data = os.urandom(5000)
    _, parts = frames(sealed(data, frame_size=FRAME_SIZE))
    payload = len(parts[0]) - FRAME_HEADER_SIZE - 16 - 8  # one frame: tag and size trailer
    for frame_size, count in ((payload, 1), (payload // 2, 2 if payload % 2 == 0 else 3)):
        stored = sealed(data, frame_size=frame_size)
        assert len(frames(stored)[1]) == count, "the last full frame is the final one"
        assert read_all(stored) == data


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=20_000),
    cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=8),
    frame_size=st.sampled_from([1, 7, 64, 1000, FRAME_SIZE]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_round_trip_any_size_chunking_and_frame_size(
    size: int, cuts: list[int], frame_size: int, seed: int
) -> None:
    data = realistic(size, seed)
    stream = seal(split(data, cuts), KEY, CONTEXT, frame_size=frame_size)
    stored = b"".join(split(b"".join(stream), cuts))
    assert read_all(stored) == data
    assert stream.stats.raw_bytes == size
    assert stream.stats.stored_bytes == len(stored)


def test_stored_bytes_hide_the_plaintext_and_differ_each_time() -> None:
    data = TEXT * 50
    first, second = sealed(data), sealed(data)
    assert first != second, "each stream has its own id, hence its own key"
    assert b"INSERT" not in first and b"pending" not in first


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_flipping_any_bit_is_detected(position: int, bit: int) -> None:
    at = position % len(DAMAGE_STORED)
    damaged = bytearray(DAMAGE_STORED)
    damaged[at] ^= 1 << bit
    assert_damage_detected(DAMAGE_DATA, DAMAGE_STORED, bytes(damaged), at)


def test_flipping_every_byte_of_a_small_object_is_detected() -> None:
    data = b"tiny backup"
    stored = sealed(data)
    for at in range(len(stored)):
        damaged = bytearray(stored)
        damaged[at] ^= 0xFF
        assert_damage_detected(data, stored, bytes(damaged), at)


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=0))
def test_truncation_anywhere_is_detected(cut: int) -> None:
    at = cut % len(DAMAGE_STORED)
    assert_damage_detected(DAMAGE_DATA, DAMAGE_STORED, DAMAGE_STORED[:at], at)


def test_truncation_at_every_frame_boundary_is_detected() -> None:
    header, parts = frames(DAMAGE_STORED)
    for count in range(len(parts)):
        released, error = read_until_damage(header + b"".join(parts[:count]))
        assert DAMAGE_DATA.startswith(released)
        assert "final frame" in error.message or "shorter than its header" in error.message


def test_dropped_duplicated_and_reordered_frames_are_detected() -> None:
    header, parts = frames(DAMAGE_STORED)
    variants = []
    for i in range(len(parts)):
        variants.append(parts[:i] + parts[i + 1 :])  # dropped
        variants.append(parts[: i + 1] + parts[i:])  # duplicated
    for i in range(len(parts) - 1):
        variants.append([*parts[:i], parts[i + 1], parts[i], *parts[i + 2 :]])  # swapped
    for variant in variants:
        released, _ = read_until_damage(header + b"".join(variant))
        assert DAMAGE_DATA.startswith(released)
        assert len(released) < len(DAMAGE_DATA)


def test_appended_bytes_are_refused() -> None:
    _, parts = frames(DAMAGE_STORED)
    for extra in (b"\x00", b"junk" * 100, parts[-1], DAMAGE_STORED):
        released, error = read_until_damage(DAMAGE_STORED + extra)
        assert "after its final frame" in error.message
        assert len(released) < len(DAMAGE_DATA)


def test_frames_from_another_stream_are_refused() -> None:
    other = sealed(DAMAGE_DATA)  # same plaintext, key and context; another stream id
    header, parts = frames(DAMAGE_STORED)
    _, other_parts = frames(other)
    spliced = header + parts[0] + b"".join(other_parts[1:])
    released, error = read_until_damage(spliced)
    assert "frame 1 fails authentication" in error.message
    assert len(released) <= authenticated_prefix(DAMAGE_STORED, 1)


def test_wrong_key_or_context_releases_nothing() -> None:
    released, error = read_until_damage(DAMAGE_STORED, key=new_data_key())
    assert released == b"" and "frame 0 fails authentication" in error.message
    released, error = read_until_damage(DAMAGE_STORED, context=b"backup-other")
    assert released == b"" and "backup backup-other" in error.message


def test_foreign_objects_are_named_as_such() -> None:
    _, error = read_until_damage(b"PK\x03\x04" + bytes(100))
    assert "not a sealed Coffer backup" in error.message
    _, error = read_until_damage(b"")
    assert "shorter than its header" in error.message


def test_bad_keys_and_frame_sizes_are_refused_before_reading() -> None:
    def never() -> Iterator[bytes]:
        raise AssertionError("must not be read")
        yield b""

    for bad in (b"", b"k" * 16, b"k" * 33):
        with pytest.raises(ValueError, match="data key must be 32 bytes"):
            seal(never(), bad, CONTEXT)
        with pytest.raises(ValueError, match="data key must be 32 bytes"):
            unseal(never(), bad, CONTEXT)
    for size in (0, -1, FRAME_SIZE + 1):
        with pytest.raises(ValueError, match="frame_size"):
            seal(never(), KEY, CONTEXT, frame_size=size)


def test_stats_wait_for_the_end_of_the_stream() -> None:
    stream = seal([b"abc"], KEY, CONTEXT)
    next(stream)
    assert not stream.finished
    with pytest.raises(RuntimeError, match="not been read to its end"):
        _ = stream.stats
    stored = next(stream) + b"".join(stream)
    assert stream.finished and stream.stats.raw_bytes == 3
    assert len(stored) + HEADER_SIZE == stream.stats.stored_bytes


def test_compressible_data_is_stored_much_smaller() -> None:
    data = TEXT * 150_000  # ≈ 10 MB
    stream = seal([data], KEY, CONTEXT)
    stored = b"".join(stream)
    assert stream.stats.stored_bytes < len(data) // 20
    assert read_all(stored) == data
    random_data = os.urandom(1 << 20)
    overhead = len(sealed(random_data, frame_size=FRAME_SIZE)) - len(random_data)
    assert 0 < overhead < 1000, "incompressible data costs only framing"


def test_reader_serves_copyfileobj_and_closes_its_source() -> None:
    data = realistic(300_000)
    closed = []

    def source() -> Iterator[bytes]:
        try:
            yield from split(sealed(data, frame_size=FRAME_SIZE), [7, 70_000])
        finally:
            closed.append(True)

    out = io.BytesIO()
    with unseal(source(), KEY, CONTEXT) as reader:
        shutil.copyfileobj(reader, out, 10_000)
    assert out.getvalue() == data
    reader = unseal(source(), KEY, CONTEXT)
    reader.read(10)
    reader.close()
    assert closed == [True, True]


def test_memory_stays_bounded_for_100_mb() -> None:
    total, block = 100 << 20, 1 << 20
    rng = random.Random(5)
    written = hashlib.sha256()

    def produce() -> Iterator[bytes]:
        for i in range(total // block):
            chunk = rng.randbytes(block // 2) + TEXT * (block // 2 // len(TEXT)) + bytes([i % 256])
            written.update(chunk)
            yield chunk

    read = hashlib.sha256()
    tracemalloc.start()
    try:
        stream = seal(produce(), KEY, CONTEXT)
        reader = unseal(stream, KEY, CONTEXT)
        raw = 0
        while piece := reader.read(block):
            read.update(piece)
            raw += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read.hexdigest() == written.hexdigest()
    assert raw == stream.stats.raw_bytes >= total - block
    assert peak < 16 << 20, f"peak {peak} bytes while streaming {raw}"
