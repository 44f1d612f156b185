"""Throughput of the sealed backup stream (zstd level 1 on every core → AES-256-GCM
frames) on this host.

Streams ``--mb`` MB of backup-like data (half random bytes, half SQL-ish text, in 1 MiB
blocks cycled from a pool larger than zstd's window) through ``seal``, then the stored
bytes (kept in memory) through ``unseal``, then both chained, and prints MB/s of
plaintext for each. Single thread each, as the agent runs them. Prints; never asserts.

    python -m bench.stream --mb 500
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence

from coffer.storage.sealed import new_data_key, seal, unseal

_BLOCK = 1 << 20
_POOL_BLOCKS = 32
_READ = 1 << 20
_TEXT = b"INSERT INTO orders (id, customer, status, placed) VALUES (1042, 'ana', 'paid', now());\n"


def _pool(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    text = (_TEXT * (_BLOCK // 2 // len(_TEXT) + 1))[: _BLOCK // 2]
    return [rng.randbytes(_BLOCK // 2) + text for _ in range(_POOL_BLOCKS)]


def _data(pool: list[bytes], total: int) -> Iterator[bytes]:
    yield from itertools.islice(itertools.cycle(pool), total // _BLOCK)


def _drain(reader_read: Callable[[int], bytes]) -> int:
    count = 0
    while piece := reader_read(_READ):
        count += len(piece)
    return count


def run(megabytes: int) -> None:
    pool, key, context = _pool(7), new_data_key(), b"bench"
    total = megabytes * _BLOCK

    start = time.perf_counter()
    stream = seal(_data(pool, total), key, context)
    stored = list(stream)
    sealed_s = time.perf_counter() - start
    stats = stream.stats
    print(f"plaintext {stats.raw_bytes / 1e6:.0f} MB, stored {stats.stored_bytes / 1e6:.0f} MB")
    print(f"seal              {stats.raw_bytes / sealed_s / 1e6:7.0f} MB/s")

    start = time.perf_counter()
    count = _drain(unseal(stored, key, context).read)
    unsealed_s = time.perf_counter() - start
    print(f"unseal            {count / unsealed_s / 1e6:7.0f} MB/s")
    del stored

    start = time.perf_counter()
    count = _drain(unseal(seal(_data(pool, total), key, context), key, context).read)
    both_s = time.perf_counter() - start
    print(f"seal then unseal  {count / both_s / 1e6:7.0f} MB/s (one thread, chained)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="plaintext size in MiB")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    run(parse_args(argv).mb)


if __name__ == "__main__":
    main()
