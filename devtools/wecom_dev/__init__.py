"""What stands beside the production package: the test and deployment harness, the demo and its data.

Never imported by ``wecom`` (an import-linter contract in ``pyproject.toml`` holds it to that).
"""
