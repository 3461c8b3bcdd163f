"""The Airflow plugin that mounts the callback receiver on the api-server at ``/wecom`` (``fastapi_apps``).

Registered through this distribution's ``airflow.plugins`` entry point, so it works from the wheel and the
image alike. Plugin endpoints are not behind Airflow's login: the signature is the authentication.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from wecom.callbacks.receiver import create_app


class WeComCallbacksPlugin(AirflowPlugin):
    name = "wecom_callbacks"
    # Not warmed ahead: every Airflow component imports plugins, and only the api-server serves this. Its
    # first request reads the settings; the standalone service is ready before it listens.
    fastapi_apps = [{"app": create_app(), "url_prefix": "/wecom", "name": "WeCom callback receiver"}]
