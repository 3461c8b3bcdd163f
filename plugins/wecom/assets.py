"""The directory tables as Airflow assets, so a data team's own DAGs can run when the directory changed:

    from wecom.assets import DIRECTORY

    with DAG("headcount_report", schedule=DIRECTORY, ...):  # or schedule=[USERS] for members only
        ...

An event is emitted when a sync changed something, with its counts (``users_added`` and so on) in the
event's extra; an unchanged sync emits none.
"""

from __future__ import annotations

from airflow.sdk import Asset

DEPARTMENTS = Asset(name="wecom.departments", uri="wecom://warehouse/wecom/departments", group="wecom")
USERS = Asset(name="wecom.users", uri="wecom://warehouse/wecom/users", group="wecom")
MEMBERSHIPS = Asset(
    name="wecom.user_departments", uri="wecom://warehouse/wecom/user_departments", group="wecom"
)
DIRECTORY = [DEPARTMENTS, USERS, MEMBERSHIPS]
