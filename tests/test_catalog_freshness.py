"""The catalog a request reads: after a change, the changer's next request sees it, even while another
request (or the scheduler) is part-way through a reload that began after the change; a catalog that is
merely old is reloaded by one caller while the others go on."""

from __future__ import annotations

from contextlib import closing

from feedback import organisation
from feedback.catalog import Catalog
from tests.conftest import BOTH_BACKENDS, Org, connect, default_plugins

pytestmark = BOTH_BACKENDS


def test_a_change_is_seen_by_the_next_caller_while_another_reload_is_under_way(org: Org) -> None:
    catalog = Catalog(plugins=default_plugins())
    with closing(connect(org.db)) as conn:
        catalog.reload(conn)
        assert not catalog.needs_reload()
        with conn:
            organisation.retire_touchpoint(conn, "tp-a1")
        catalog.invalidate()
        # The scheduler starts a reload after the change and has not finished it...
        assert catalog.needs_reload()
        # ...so the request that follows the change must not go on with the snapshot held.
        assert catalog.needs_reload()
        assert "tp-a1" in catalog.reload(conn).retired
        assert not catalog.needs_reload()


def test_a_merely_old_catalog_is_reloaded_by_one_caller(org: Org) -> None:
    catalog = Catalog(ttl=0.0, plugins=default_plugins())
    with closing(connect(org.db)) as conn:
        catalog.reload(conn)
    assert catalog.needs_reload()  # past its TTL: this caller reloads...
    assert not catalog.needs_reload()  # ...and the others read what is held meanwhile
