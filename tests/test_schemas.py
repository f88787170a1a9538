"""The committed JSON Schemas are what the models generate, and they describe what devicelog writes."""

import json

import pytest

from devicelog import schemas, transfer


@pytest.mark.parametrize("name", schemas.names())
def test_committed_schema_is_up_to_date(name):
    path = schemas.SCHEMA_DIR / name
    assert path.exists(), f"schemas/{name} is missing: run `{schemas.REGENERATE}` and commit it"
    assert path.read_text(encoding="utf-8") == schemas.render(name), (
        f"schemas/{name} is stale (a model changed): run `{schemas.REGENERATE}` and commit the result"
    )


def test_check_mode_reports_a_stale_schema(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(schemas, "SCHEMA_DIR", tmp_path)
    (tmp_path / "settings.schema.json").write_text("{}\n", encoding="utf-8")
    assert schemas.main(["--check"]) == 1
    assert "settings.schema.json" in capsys.readouterr().err
    assert schemas.main([]) == 0
    assert schemas.main(["--check"]) == 0


def _validator(name):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((schemas.SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def test_an_export_is_valid_against_the_document_schema(engine):
    from devicelog.store.db import write_session
    from tests.conftest import TODAY
    from tests.test_transfer import document

    with write_session(engine) as s:
        transfer.import_document(s, document(), author="rn", today=TODAY)
    exported = json.loads(transfer.export_text(engine))
    validator = _validator("document.schema.json")
    assert list(validator.iter_errors(exported)) == []
    exported["events"][0]["data"]["volume_added_ml"] = -3
    assert [list(e.absolute_path)[:2] for e in validator.iter_errors(exported)] == [["events", 0]]


def test_the_shipped_catalogue_and_default_settings_are_valid():
    from importlib import resources

    from devicelog.settings import Settings

    shipped = json.loads(resources.files("devicelog.data").joinpath("catalogue.json").read_text(encoding="utf-8"))
    assert list(_validator("catalogue.schema.json").iter_errors(shipped)) == []
    assert list(_validator("settings.schema.json").iter_errors(Settings().model_dump(mode="json"))) == []
    assert list(_validator("settings.schema.json").iter_errors({"refill_margin_days": 30}))
