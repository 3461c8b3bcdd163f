"""The test harness itself: a private PostgreSQL cluster when no server answers."""

from __future__ import annotations

import psycopg

from wecom_dev.postgres import start_private_cluster


def test_a_private_cluster_starts_serves_a_fresh_database_and_is_removed():
    server = start_private_cluster()
    try:
        url = server.create_database()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == url.rsplit("/", 1)[1]
        server.drop_database(url)
    finally:
        server.stop()
    assert not server.data_dir.exists()  # a throwaway cluster leaves nothing behind
