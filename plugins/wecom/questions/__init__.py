"""Airflow's human-in-the-loop questions asked in WeCom: ``WeComHITLNotifier`` (``wecom.notifications``)
asks (``ask``), the ``wecom_questions`` DAG answers and shows decisions (``bridge``), what a card says is
decided without a database (``cards``)."""
