"""Amaranth hardware: matrix-vector unit, weight memories, gate/cell pipeline, sequencer."""
