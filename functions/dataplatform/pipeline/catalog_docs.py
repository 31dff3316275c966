"""`dataplatform catalog build`: the data catalog as Markdown pages, one per definition.

Pages are compiled from the same definitions (and the same `event_table` / endpoint schema
compilers) as the warehouse, so they cannot drift from it. The output directory is
rewritten as a whole: pages of definitions that no longer exist disappear.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from dataplatform.compile.markdown import schema_markdown
from dataplatform.definitions.loader import Catalog
from dataplatform.pipeline import describe


@dataclass(frozen=True)
class CatalogDocs:
    out_dir: Path
    pages: tuple[Path, ...]


def build_catalog_docs(catalog: Catalog, out_dir: Path) -> CatalogDocs:
    """Write `index.md`, `events/<key>.md` and `endpoints/<name>.md` under `out_dir`."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "events").mkdir(parents=True)
    (out_dir / "endpoints").mkdir()
    pages: list[Path] = []
    index = ["# Data catalog", "", "## Event types", "", "| event | owner | domain | retention | description |", "| --- | --- | --- | --- | --- |"]
    for schema in sorted(catalog.schemas, key=lambda s: s.key):
        page = out_dir / "events" / f"{schema.key}.md"
        page.write_text(schema_markdown(schema))
        pages.append(page)
        index.append(
            f"| [{schema.key}](events/{schema.key}.md) | {schema.owner} | {schema.domain} "
            f"| {schema.retention_days} days | {_one_line(schema.description)} |"
        )
    index += ["", "## Data endpoints", "", "| endpoint | owner | schedule | upstreams | description |", "| --- | --- | --- | --- | --- |"]
    for endpoint in sorted(catalog.endpoints, key=lambda e: e.name):
        description = describe.describe(catalog, endpoint.name)
        text = describe.render_text(description)
        page = out_dir / "endpoints" / f"{endpoint.name}.md"
        page.write_text(f"# {endpoint.table_ref}\n\n```\n{text.rstrip()}\n```\n\n## SQL\n\n```sql\n{endpoint.sql.rstrip()}\n```\n")
        pages.append(page)
        upstreams = ", ".join(r.name for r in description.upstreams if r.direct)
        index.append(
            f"| [{endpoint.name}](endpoints/{endpoint.name}.md) | {endpoint.owner} | `{endpoint.schedule}` "
            f"| {upstreams} | {_one_line(endpoint.description)} |"
        )
    index_page = out_dir / "index.md"
    index_page.write_text("\n".join(index) + "\n")
    return CatalogDocs(out_dir, (index_page, *pages))


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
