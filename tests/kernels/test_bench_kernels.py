"""`ggufsm bench kernels`: every shape of a type measured, each share taken against the bandwidth sampled beside it."""

from __future__ import annotations

import pytest

from ggufsm import _core
from ggufsm.cli import main
from ggufsm.reference.bench_kernels import SHAPES
from ggufsm.spec.errors import InvalidInput


def test_each_cell_is_shared_against_the_read_bandwidth_sampled_with_it(capsys):
    assert main(["bench", "kernels", "--types", "Q8_0", "--threads", "1", "--repeat", "1", "--stream-mib", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| Q8_0 |")]
    assert len(rows) == len(SHAPES)
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        gbs, read, share = float(cells[3]), float(cells[4]), cells[5]
        assert gbs > 0 and read > 0
        # The printed figures are rounded (0.1 GB/s, 1 %), so their quotient only comes close.
        assert abs(float(share.split()[0].rstrip("%")) / 100 - gbs / read) < 0.02


def test_the_probe_measures_again_on_demand_and_refuses_a_buffer_smaller_than_8_kib():
    probe = _core.ReadBandwidthProbe(1 << 20)
    assert probe.best_gbs(1, 1) > 0 and probe.best_gbs(2, 2) > 0
    with pytest.raises(InvalidInput, match="8 KiB"):
        _core.ReadBandwidthProbe(4096)
