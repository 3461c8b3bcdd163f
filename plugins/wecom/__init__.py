"""WeCom (企业微信) for Apache Airflow: hook, operators, notifier, directory sync and messaging."""

__version__ = "0.1.0"

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
