"""The [history] settings: file or URL, recorded registers, and their mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.http.app import create_app
from gateway.http.config import Settings
from gateway.model.errors import DescriptorError
from tests.support import register_subset


def test_history_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[history]\nurl = "postgresql://gw@db/history"\nrecord = ["FT", "VALG"]\n', "utf-8"
    )
    settings = Settings.load(config, env={})
    assert settings.history_url == "postgresql://gw@db/history"
    assert settings.history_record == ("FT", "VALG")
    from_env = Settings.load(
        None,
        env={"GATEWAY_HISTORY_RECORD": "FT.Aktør, DE", "GATEWAY_HISTORY_URL": "postgresql://x/y"},
    )
    assert from_env.history_record == ("FT.Aktør", "DE")
    assert from_env.history_url == "postgresql://x/y"
    config.write_text("[history]\nrecord = 3\n", "utf-8")
    with pytest.raises(DescriptorError, match="list of register names"):
        Settings.load(config, env={})


@pytest.mark.parametrize("spec", ["NOPE", "FT.Nope"])
def test_recording_what_is_not_loaded_is_refused(spec: str) -> None:
    with register_subset("FT") as registers:
        settings = Settings(registers_dir=registers, history_record=(spec,))
        with pytest.raises(DescriptorError, match=r"REG or REG\.Entity"):
            create_app(settings)
