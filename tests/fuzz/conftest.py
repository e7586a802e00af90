"""The fuzz tests share the simulation tests' build cache."""

from tests.sim.conftest import sim_cache

__all__ = ["sim_cache"]
