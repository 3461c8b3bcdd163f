"""A WeCom simulator: the real wire format over real HTTP, for tests, benchmarks and demos."""

from wecom_simulator.admin import SimulatorAdmin
from wecom_simulator.org import Org, generate_org
from wecom_simulator.server import SimulatorConfig, WeComSimulator

__all__ = ["Org", "SimulatorAdmin", "SimulatorConfig", "WeComSimulator", "generate_org"]
