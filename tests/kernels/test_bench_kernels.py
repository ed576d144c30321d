"""`ggufsm bench kernels`: every shape of a type measured, each share taken against the bandwidth sampled beside it."""

from __future__ import annotations

import pytest

from ggufsm._core import kernels
from ggufsm.cli import main
from ggufsm.reference.bench.kernels import SHAPES, paired_share
from ggufsm.spec.errors import InvalidInput


def test_every_shape_of_a_type_is_measured_with_its_paired_bandwidth_and_share(capsys):
    assert main(["bench", "kernels", "--types", "Q8_0", "--threads", "1", "--repeat", "3", "--stream-mib", "1"]) == 0
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
