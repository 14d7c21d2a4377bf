"""Every roll-up row of a tenant, for the tests that compare the bumps with a rebuild."""

from __future__ import annotations

from accounts.models import Tenant
from analytics import rollups


def rollup_rows(tenant: Tenant) -> dict[str, set[tuple]]:
    """Each roll-up table's rows of the tenant (``rollups.ROLLUPS``, every table the bumps
    write), without ids, leaving out rows whose figures are all 0: a bump taken back leaves
    such a row, a rebuild does not write it."""
    found = {}
    for model in rollups.ROLLUPS:
        fields = [
            f.attname
            for f in model._meta.concrete_fields
            if not f.primary_key and f.attname != "tenant_id"
        ]
        names = {f.attname for f in model._meta.concrete_fields}
        figures = ["count"] if "count" in names else list(rollups.FIGURES)
        at = [fields.index(name) for name in figures]
        rows = model._default_manager.filter(tenant=tenant).values_list(*fields)
        found[model.__name__] = {row for row in rows if any(row[n] for n in at)}
    return found
