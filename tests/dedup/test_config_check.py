"""`gateway rules check` validates config/dedup.yaml with the rest of the configuration."""

from __future__ import annotations

import shutil

from click.testing import CliRunner

from gateway.cli import main

from .replay import ROOT


def test_rules_check_reports_a_broken_dedup_file_with_its_line(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    assert CliRunner().invoke(main, ["rules", "check", str(config)]).exit_code == 0
    text = (config / "dedup.yaml").read_text(encoding="utf-8")
    (config / "dedup.yaml").write_text(text.replace("    pothole:          {radius_m: 40",
                                                    "    potholes:         {radius_m: 40"), encoding="utf-8")
    result = CliRunner().invoke(main, ["rules", "check", str(config)])
    assert result.exit_code == 1
    assert "dedup.yaml:" in result.output and "unknown category 'potholes'" in result.output
