"""A WeCom simulator: the real wire format over real HTTP, for tests, benchmarks and demos."""

from wecom.simulator.admin import SimulatorAdmin
from wecom.simulator.org import Org, generate_org
from wecom.simulator.server import SimulatorConfig, WeComSimulator

__all__ = ["Org", "SimulatorAdmin", "SimulatorConfig", "WeComSimulator", "generate_org"]
