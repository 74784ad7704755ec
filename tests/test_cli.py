from typer.testing import CliRunner

from aim.cli import app


def test_help_for_every_command():
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0 and "prepare" in top.output and "generate" in top.output
    prepare = runner.invoke(app, ["prepare", "--help"])
    assert prepare.exit_code == 0 and "quarantine" in prepare.output and "--set" in prepare.output
    for sub in ("planted", "criteo"):
        assert runner.invoke(app, ["generate", sub, "--help"]).exit_code == 0


def test_generate_planted_from_the_cli(tmp_path):
    result = CliRunner().invoke(app, ["generate", "planted", "--out", str(tmp_path), "--rows", "500"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data.csv").read_text().count("\n") == 501
