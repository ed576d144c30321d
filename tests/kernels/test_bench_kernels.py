"""`ggufsm bench kernels`: every shape of a type measured, each share taken against the bandwidth sampled beside it."""

from __future__ import annotations

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType

from ggufsm._core import kernels
from ggufsm.cli import main
from ggufsm.reference.bench.int8_peak import PREFILL_SHAPES
from ggufsm.reference.bench.kernels import SHAPES, paired_share
from ggufsm.spec.errors import InvalidInput


def test_every_shape_of_a_type_is_measured_with_its_paired_bandwidth_and_share(capsys):
    assert main(["bench", "kernels", "--types", "Q8_0", "--threads", "1", "--repeat", "3", "--stream-mib", "1",
                 "--prefill-rows", "0"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| Q8_0 |")]
    assert [row.split("|")[2].strip() for row in rows] == [f"{label} [{r} x {c}]" for label, r, c in SHAPES]
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        gbs, read, share = float(cells[3]), float(cells[4]), float(cells[5].split()[0].rstrip("%"))
        assert gbs > 0 and read > 0 and share > 0


def test_the_share_pairs_each_round_with_the_bandwidth_beside_it_and_drops_an_odd_round():
    # Bandwidth drifting 25 -> 43 GB/s with the cell keeping pace: every pair says 80%. A slow
    # cell round (5 GB/s: descheduled) is one of three and does not move the median.
    assert paired_share([20.0, 28.0, 34.4], [25.0, 35.0, 43.0]) == pytest.approx(0.8)
    assert paired_share([24.0, 24.0, 5.0], [30.0, 30.0, 30.0]) == pytest.approx(0.8)


def test_the_probe_measures_again_on_demand_and_refuses_a_buffer_smaller_than_8_kib():
    probe = kernels.ReadBandwidthProbe(1 << 20)
    assert probe.best_gbs(1, 1) > 0 and probe.best_gbs(2, 2) > 0
    with pytest.raises(InvalidInput, match="8 KiB"):
        kernels.ReadBandwidthProbe(4096)


def test_a_probe_sample_is_the_faster_of_its_two_reads_and_an_unknown_read_is_refused():
    for huge_pages in (True, False):
        probe = kernels.ReadBandwidthProbe(4 << 20, 2, huge_pages)
        assert probe.huge_pages is huge_pages
        assert probe.pass_gbs("sum", 2) > 0 and probe.pass_gbs("prefetch", 1) > 0 and probe.sample_gbs(2) > 0
        assert 0 <= probe.huge_page_bytes <= 4 << 20
    with pytest.raises(InvalidInput, match="'sum' or 'prefetch'"):
        kernels.ReadBandwidthProbe(1 << 20).pass_gbs("stream")


@pytest.mark.parametrize("non_temporal", [False, True], ids=["t0", "nta"])
def test_a_stream_sum_adds_every_whole_64_byte_line_once_whichever_prefetch_hint(non_temporal):
    data = np.random.default_rng(5).integers(0, 256, size=(1 << 16) + 13, dtype=np.uint8)
    words = data[: data.size // 64 * 64].view(np.uint64)  # a partial last line is not read
    expected = int(words.sum(dtype=np.uint64))
    assert kernels.stream_sum(data, non_temporal) == expected
    assert kernels.stream_sum(data[:0], non_temporal) == 0


def test_short_streams_time_every_round_and_thread_and_refuse_a_stream_the_buffer_cannot_hold():
    probe = kernels.ReadBandwidthProbe(8 << 20)
    for lead in ("l1", "l2", "load"):
        walls, threads_s = probe.short_streams(2, 100_000, "prefetch", 5, 64 << 10, 1000, lead)
        assert len(walls) == 5 and len(threads_s) == 10
        assert all(s > 0 for s in threads_s) and all(w >= max(threads_s[2 * r:2 * r + 2]) for r, w in enumerate(walls))
    with pytest.raises(InvalidInput, match="fitting the"):
        probe.short_streams(8, 1 << 20, "sum", 1)
    with pytest.raises(InvalidInput, match="'l1', 'l2' or 'load'"):
        probe.short_streams(1, 100_000, "sum", 1, 4096, 0, "l3")


def test_a_run_is_held_to_the_median_of_the_samples_around_it_and_the_old_measure_kept_apart():
    from ggufsm.reference.bench.limits import Beside

    beside = Beside([{"sum": 20.0, "prefetch": 24.0}, {"sum": 26.0, "prefetch": 22.0},
                     {"sum": 21.0, "prefetch": 23.0}, {"sum": 30.0, "prefetch": 10.0}], before=2, old=19.0)
    assert beside.samples == [24.0, 26.0, 23.0, 30.0]
    assert beside.median == 25.0 and (beside.low, beside.high) == (23.0, 30.0)
    assert beside.old_measure == 19.0
    with pytest.raises(ValueError, match="old measure was not taken"):
        _ = Beside([{"sum": 1.0, "prefetch": 1.0}]).old_measure


def test_the_read_probe_samples_before_and_after_the_run_it_brackets():
    from ggufsm.reference.bench.limits import ReadProbe

    probe = ReadProbe(kernels.ThreadPool(1), around=2, old_measure=True)
    result, beside = probe.around(lambda: "ran")
    assert result == "ran" and len(beside.passes) == 4 and beside.before == 2 and beside.old_measure > 0
    assert probe.every == [beside] and "2 samples right before and 2 right after" in probe.describe()


# ---------------------------------------------------------------- the int8 peak and the prefill products

def test_every_int8_peak_loop_this_cpu_runs_does_the_products_it_counts():
    """The checksum of every accumulator lane equals the plain C++ sum of the same products: the loop is
    neither optimized away nor folded (AVX-VNNI and AVX512-VNNI loops run only where the CPU has them)."""
    isas = kernels.int8_peak_isas()
    assert ("avx2" in isas) == ("avx2" in kernels.supported_isas())
    for isa in isas:
        for threads in (1, 2):
            gops, checksum = kernels.int8_peak(isa, 1000, 1, threads)
            assert gops > 0
            assert checksum == kernels.int8_peak_expected_checksum(isa, 1000, threads) != 0


def test_the_int8_peak_refuses_an_unknown_or_absent_loop_and_a_count_below_one():
    with pytest.raises(InvalidInput, match="unknown loop"):
        kernels.int8_peak("neon", 10, 1, 1)
    for isa in set(("avx2", "avx_vnni", "avx512_vnni")) - set(kernels.int8_peak_isas()):
        with pytest.raises(InvalidInput, match="cannot run"):
            kernels.int8_peak(isa, 10, 1, 1)
    with pytest.raises(InvalidInput, match="iterations"):
        kernels.int8_peak("avx2", 0, 1, 1)


def test_each_prefill_product_is_reported_on_both_layouts_beside_the_avx2_peak_of_its_pass(capsys):
    assert main(["bench", "kernels", "--types", "Q8_0", "--threads", "1", "--repeat", "1", "--stream-mib", "1",
                 "--prefill-rows", "8", "--prefill-types", "Q4_0,Q4_K"]) == 0
    out = capsys.readouterr().out
    assert "`avx2`" in out and "GOP/s at 1 thread" in out
    q4_0 = [line for line in out.splitlines() if line.startswith("| Q4_0 |")]
    q4_k = [line for line in out.splitlines() if line.startswith("| Q4_K |")]
    # Every shape fits 32-blocks, and each is timed repacked (Rows8, as a model loads it) and on the file's layout.
    assert len(q4_0) == 2 * len(PREFILL_SHAPES)
    assert [r.split("|")[3].strip() for r in q4_0] == ["Rows8", "file"] * len(PREFILL_SHAPES)
    assert [r.split("|")[2].strip() for r in q4_k][::2] == [f"{label} [{r} x {c}]" for label, r, c in PREFILL_SHAPES
                                                            if c % 256 == 0]  # k-quants only where cols hold 256-blocks
    for row in q4_0 + q4_k:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert float(cells[3]) > 0 and float(cells[4].rstrip("%")) > 0


def test_matmul_seconds_times_a_prefill_product_and_refuses_no_rows():
    from gguf import GGMLQuantizationType as T

    from ggufsm.reference.bench.quant_blocks import random_weights

    rng = np.random.default_rng(0)
    w = random_weights(T.Q4_0, 64, 64, rng)
    assert kernels.matmul_seconds(int(T.Q4_0), w, 64, 64, rng.standard_normal((8, 64)).astype(np.float32), 2, 1) > 0
    with pytest.raises(InvalidInput):
        kernels.matmul_seconds(int(T.Q4_0), w, 64, 64, np.zeros((0, 64), np.float32), 1, 1)


def test_the_decode_shapes_are_read_from_the_registry_files_one_per_distinct_type_and_shape():
    from ggufsm.reference.bench import decode_kernels

    # Session 5 typed this list by hand from layer 0 and missed two products other layers run: Gemma 3's
    # Q5_0 attn_v (a Q8_0 attn_v only in some layers) and its Q4_K ffn_down (beside the Q6_K ones).
    assert decode_kernels.decode_shapes() == [
        ("SmolLM2", "attn_q/attn_output", "Q4_1", 576, 576),
        ("SmolLM2", "attn_k/attn_v", "Q4_1", 192, 576),
        ("SmolLM2", "ffn_gate/ffn_up", "Q4_1", 1536, 576),
        ("SmolLM2", "ffn_down", "Q4_1", 576, 1536),
        ("SmolLM2", "output (tied)", "Q8_0", 49152, 576),
        ("Gemma 3", "attn_q", "Q5_0", 1024, 640),
        ("Gemma 3", "attn_k/attn_v", "Q5_0", 256, 640),
        ("Gemma 3", "attn_v", "Q8_0", 256, 640),
        ("Gemma 3", "attn_output", "Q4_K", 640, 1024),
        ("Gemma 3", "ffn_gate/ffn_up", "Q5_0", 2048, 640),
        ("Gemma 3", "ffn_down", "Q6_K", 640, 2048),
        ("Gemma 3", "ffn_down", "Q4_K", 640, 2048),
        ("Gemma 3", "output (tied)", "Q8_0", 262144, 640),
    ]


def test_decode_shapes_time_every_product_in_the_layout_the_model_loads(capsys, monkeypatch):
    from ggufsm.reference.bench import decode_kernels

    # A repacked layer matrix and a file-layout Q8_0 one (the real list holds Gemma 3's 178 MB output matrix).
    shapes = [s for s in decode_kernels.decode_shapes() if s[1] in ("attn_k/attn_v", "attn_v") and s[2] != "Q5_0"]
    monkeypatch.setattr(decode_kernels, "decode_shapes", lambda: shapes)
    assert main(["bench", "kernels", "--types", "Q8_0", "--threads", "1", "--repeat", "1", "--stream-mib", "1",
                 "--prefill-rows", "0", "--decode-shapes"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| SmolLM2 |", "| Gemma 3 |"))]
    assert [tuple(cell.strip() for cell in row.strip("|").split("|")[:3]) for row in rows] == \
        [(model, matrix, tname) for model, matrix, tname, _, _ in shapes]
    for row, (_, _, tname, rows_, _) in zip(rows, shapes, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        # Repacked exactly where the kernels have a Rows8 layout for the type and shape, as at load.
        assert cells[3] == ("Rows8" if kernels.repackable(int(GGMLQuantizationType[tname]), rows_) else "file")
        assert float(cells[6].split()[0]) > 0 and float(cells[7]) > 0 and float(cells[8].rstrip("%")) > 0
        assert float(cells[9]) > 0  # both matrices fit in cache: their in-cache rate is given
        # ... and their rate on one thread, with the headroom it gives over the read probe at the threads timed.
        assert float(cells[10]) > 0 and float(cells[11]) > 0
    assert {row.split("|")[4].strip() for row in rows} == {"Rows8", "file"}


def test_the_headroom_is_a_threads_in_cache_rate_times_the_threads_over_the_probe_beside_each_round():
    from ggufsm.reference.bench.decode_kernels import DecodeCell

    cell = DecodeCell("m", "w", "Q4_1", 8, 32, "Rows8", 160, gbs=[5.0, 6.0, 7.0], read_gbs=[20.0, 30.0, 10.0],
                      thread_gbs=[20.0, 15.0, 10.0], threads=2)
    assert cell.headroom == 2.0  # rounds: 2 x 20 / 20, 2 x 15 / 30, 2 x 10 / 10 -> median of (2, 1, 2)
    assert DecodeCell("m", "w", "Q8_0", 8, 32, "file", 272, [1.0], [2.0]).headroom is None  # not timed in cache


def test_the_probe_reads_compared_give_every_read_on_both_placements_at_each_thread_count(capsys):
    assert main(["bench", "kernels", "--types", "Q8_0", "--threads", "1,2", "--repeat", "1", "--stream-mib", "1",
                 "--prefill-rows", "0", "--probe-reads", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "pages (" in line and line.startswith("| ")]
    seen = {(row.split("|")[1].strip(), row.split("|")[2].split("(")[0].strip(), row.split("|")[3].strip()) for row in rows}
    assert seen == {(t, p, r) for t in ("1", "2") for p in ("2 MiB pages", "4 KiB pages") for r in ("sum", "prefetch")}
