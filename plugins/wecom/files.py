"""Where the SQL and the message templates are: ``include/`` ships inside the package.

In a checkout ``plugins/wecom/include`` is a link to the project's ``include/`` folder (the layout Airflow
users know); a wheel, an editable install and the Docker image carry the same files at the same place.
"""

from __future__ import annotations

from pathlib import Path

INCLUDE = Path(__file__).resolve().parent / "include"
SQL = INCLUDE / "sql"
TEMPLATES = INCLUDE / "templates"
