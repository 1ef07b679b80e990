"""The configuration reference names every setting."""

from core.settings import PROJECT_ROOT, Settings


def test_every_setting_is_documented():
    text = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    missing = [
        f"CHURN_{name.upper()}"
        for name in Settings.model_fields
        if f"`CHURN_{name.upper()}`" not in text
    ]
    assert missing == []
