"""The configuration reference names every setting."""

from core.settings import PROJECT_ROOT, environment_names


def test_every_setting_is_documented_with_its_field():
    text = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    missing = [
        f"{env} ({field})"
        for env, field in environment_names().items()
        if f"| `{env}` (`{field}`) |" not in text
    ]
    assert missing == []
