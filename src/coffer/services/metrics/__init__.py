"""Coffer's ``/metrics`` (Prometheus text format).

``recorder``  — the figures the control plane counts as things happen (requests,
               workflows, heartbeats) and the latest engine activity of each instance,
               in memory, one ``Metrics`` per server
``snapshot``  — what a scrape reads from the metadata database (instances, hosts,
               latest completed backups)
``families``  — pure: snapshot + recorded figures → metric families
``render``    — the exposition text of one scrape

Nothing here exposes a secret: labels are ids, names, projects, datastores, HTTP methods,
route templates (never a concrete path) and workflow names; values are counts, seconds
and bytes.
"""

from __future__ import annotations

from coffer.services.metrics.recorder import Metrics
from coffer.services.metrics.render import CONTENT_TYPE, scrape

__all__ = ["CONTENT_TYPE", "Metrics", "scrape"]
