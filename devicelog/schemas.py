"""JSON Schemas generated from the models, committed in ``schemas/``.

    python -m devicelog.schemas            # rewrite schemas/*.json
    python -m devicelog.schemas --check    # exit 1 if a committed schema is stale

``tests/test_schemas.py`` fails when a committed schema differs from what the models
generate now, so a change to a record, the settings or the catalogue cannot reach the
repository without its schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
REGENERATE = "python -m devicelog.schemas"


def _models() -> dict[str, type]:
    from devicelog.clinic.advisory import AdvisoryIn
    from devicelog.clinic.catalogue import Catalogue
    from devicelog.settings import Settings
    from devicelog.transfer import Document

    return {
        "document.schema.json": Document,
        "settings.schema.json": Settings,
        "catalogue.schema.json": Catalogue,
        "advisory.schema.json": AdvisoryIn,
    }


TITLES = {
    "document.schema.json": ("devicelog import/export document", "What `devicelog export` writes and `devicelog import` reads."),
    "settings.schema.json": ("devicelog clinic settings", "The clinic settings file (TOML), as its values."),
    "catalogue.schema.json": ("devicelog device and drug catalogue", "devicelog/data/catalogue.json and catalogue additions."),
    "advisory.schema.json": ("devicelog safety notice", "A notice for `devicelog advisory import` (docs/advisories.md)."),
}


def render(name: str) -> str:
    """The schema text for ``name`` (a file name in schemas/), stable byte for byte."""
    model = _models()[name]
    schema = model.model_json_schema(mode="validation")
    title, description = TITLES[name]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://devicelog.invalid/schemas/{name}",
        **schema,
        "title": title,
        "description": description + (" " + schema["description"] if schema.get("description") else ""),
    }
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def names() -> list[str]:
    return sorted(_models())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for name in names():
        path = SCHEMA_DIR / name
        text = render(name)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        if check:
            stale.append(name)
        else:
            SCHEMA_DIR.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(stale)}; run `{REGENERATE}`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
