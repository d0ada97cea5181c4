"""The database server restarts (an upgrade, a failover): a node on PostgreSQL answers 503 while it is
gone, never a 500, and serves again by itself once it is back, with nothing acknowledged lost."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.conftest import Server, make_org, poll_until
from tests.postgres import Cluster

pytestmark = pytest.mark.backends("postgresql")


def test_a_node_rides_out_a_database_restart(backend: str) -> None:
    cluster = Cluster().start()  # its own: restarting the shared one would disturb other tests' servers
    try:
        org = make_org(cluster.create_database())
        server = Server(org.db).start()
        try:
            acknowledged: set[str] = set()
            statuses: list[int] = []

            def post() -> int:
                response_id = str(uuid.uuid4())
                reply = httpx.post(
                    f"{server.url}/api/v1/responses",
                    json={"id": response_id, "touchpoint": "tp-a", "answers": {"overall": 4}},
                    timeout=30,
                )
                statuses.append(reply.status_code)
                if reply.status_code == 201:
                    acknowledged.add(response_id)
                return reply.status_code

            assert post() == 201
            cluster.restart()
            poll_until(lambda: post() == 201, timeout=20, what="ingest after the database came back")
            for _ in range(20):
                assert post() == 201
            assert 500 not in statuses, statuses
            health = httpx.get(f"{server.url}/api/v1/units", headers={"Authorization": f"Bearer {org.tokens['admin']}"})
            assert health.status_code == 200  # the readers' pool replaced its dropped connections
        finally:
            server.stop()
        import psycopg

        with psycopg.connect(str(org.db)) as conn:
            stored = {row[0] for row in conn.execute("SELECT id FROM responses")}
        assert acknowledged <= stored
    finally:
        cluster.stop()
        time.sleep(0)  # nothing else to wait for: the cluster's folder is gone
