"""While a product's threads wait for the next one, the pool reads ahead the weights each thread's share of the next
product starts with (cpp/runtime/thread_pool.h ReadAhead, cpp/kernels/matmul.h read_ahead_for). The rules proved
here: the ranges are the starts of the thread's parts of the split matmul_shared makes, inside the weights; reading
ahead is prefetch only, so weights that end right before an inaccessible page (or are gone) fault nothing; and it
changes no bit of any product."""

from __future__ import annotations

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import random_weights

READ_AHEAD_MAX = 192 << 10  # ThreadPool::kReadAheadBytes

Q4_1, Q8_0, Q4_K = GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_K
COLS = 512
# (type, rows) sets as a layer's products come: wq/wk/wv, gate/up, one large matrix (split in 4 MiB chunks).
SETS = {"qkv": [(Q4_1, 576), (Q4_1, 192), (Q4_1, 192)], "gate-up": [(Q8_0, 1536), (Q8_0, 1536)], "large": [(Q8_0, 16384)]}


def row_bytes(qtype, cols=COLS):
    return random_weights(qtype, 1, cols, np.random.default_rng(0)).nbytes


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("products", SETS, ids=list(SETS))
def test_each_thread_reads_ahead_the_start_of_its_part_inside_the_weights(products, threads):
    rng = np.random.default_rng(5)
    specs = SETS[products]
    weights = [random_weights(t, rows, COLS, rng) for t, rows in specs]
    ranges = kernels.read_ahead_ranges([(int(t), w, rows, False) for (t, rows), w in zip(specs, weights, strict=True)], COLS, threads)
    assert len(ranges) == threads
    total = sum(w.nbytes for w in weights)
    seen = []
    for t, thread_ranges in enumerate(ranges):
        assert thread_ranges, t
        k, offset, _ = thread_ranges[0]
        assert offset % (16 * row_bytes(specs[k][0])) == 0  # a part starts at a tile of 16 rows
        for k, offset, n in thread_ranges:
            assert 0 <= offset and offset + n <= weights[k].nbytes
            seen.append((k, offset, n))
        assert sum(n for _, _, n in thread_ranges) <= total
    assert ranges[0][0][:2] == (0, 0)  # the caller's first part is the first rows
    if threads == 2:  # the worker's starts where its part does: past the caller's
        assert ranges[1][0][:2] > ranges[0][0][:2]
    seen.sort()
    for (k1, o1, n1), (k2, o2, _) in zip(seen[:-1], seen[1:], strict=True):  # the threads' ranges never overlap
        assert k1 != k2 or o1 + n1 <= o2




@pytest.mark.parametrize("qtype", [Q4_1, Q8_0, Q4_K], ids=lambda t: t.name)
def test_reading_ahead_weights_that_end_before_an_inaccessible_page_faults_nothing_and_changes_no_bit(qtype, before_a_guard_page):
    rng = np.random.default_rng(9)
    rows = 96  # small: the whole matrix is inside one thread's read-ahead, to its last byte
    products = [(int(qtype), random_weights(qtype, rows, COLS, rng), rows, False) for _ in range(2)]
    then = [(int(qtype), before_a_guard_page(random_weights(qtype, rows, COLS, rng)), rows, False)]
    x = rng.standard_normal((1, COLS)).astype(np.float32)
    alone = kernels.matmul_shared(products, COLS, x, 2)
    for _ in range(20):  # back to back: the workers read ahead between the calls
        ys = kernels.matmul_shared(products, COLS, x, 2, then=then)
        for y, y_alone in zip(ys, alone, strict=True):
            assert np.array_equal(y.view(np.uint32), y_alone.view(np.uint32))
    assert then[0][1].nbytes <= READ_AHEAD_MAX
