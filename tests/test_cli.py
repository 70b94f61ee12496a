"""The `lssed` command line: every subcommand is listed and has help; errors exit non-zero."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lssed.cli import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out, name


def test_every_subcommand_module_is_available():
    """A subcommand whose module does not import would silently degrade to 'not available'."""
    import importlib

    for name, (module, _help) in COMMANDS.items():
        mod = importlib.import_module(module)
        assert callable(mod.add_arguments) and callable(mod.main), name
        assert (mod.__doc__ or "").strip(), f"{module} needs a docstring (it is the --help text)"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: lssed " + name in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_subcommand_is_an_error():
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["frobnicate"])
    assert exc.value.code == 2


def test_run_with_a_bad_override_fails_cleanly():
    """Config errors end with exit status 2 and a message naming the key, before Ray starts.

    Run in a fresh interpreter: this test session's own Ray may already be up.
    """
    script = (
        "import ray, sys; from lssed.cli import main; "
        "codes = [main(['run', '--set', 'train.epochs=ten']), main(['run', '--set', 'train.nope=1']), "
        "main(['run', '--set', 'train.models=[no_such_model]']), "
        f"main(['run', '--config', {str(REPO / 'no-such.yaml')!r}])]; "
        "print('RESULT', *codes, ray.is_initialized())"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")][-1].split()[1:]
    assert result == ["2", "2", "2", "2", "False"], proc.stdout + proc.stderr
    assert "train.epochs" in proc.stderr and "train.nope" in proc.stderr and "no_such_model" in proc.stderr
    assert "no-such.yaml" in proc.stderr


def test_console_help_is_fast_and_works_as_a_process():
    """`lssed --help` in a fresh interpreter (heavy imports stay inside the subcommands)."""
    proc = subprocess.run([sys.executable, "-m", "lssed.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert all(name in proc.stdout for name in COMMANDS)
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, lssed.cli; lssed.cli.build_parser(); print('torch' in sys.modules, 'ray' in sys.modules)"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "False", "building the parser must not import ray"


def test_top_level_help_imports_no_stage_module():
    """`lssed --help` builds only the command list: neither torch nor Ray nor pyarrow is imported."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, lssed.cli; lssed.cli.build_parser(''); "
         "print(*[m in sys.modules for m in ('torch', 'ray', 'pyarrow')])"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", "False"]


# --------------------------------------------------------------------------- logging and errors


def test_verbosity_levels():
    import logging

    from lssed.logs import level_for

    assert (level_for(0), level_for(1), level_for(2), level_for(-1)) == (logging.INFO, logging.DEBUG, logging.DEBUG,
                                                                         logging.WARNING)


@pytest.mark.parametrize("argv, level", [(["models"], "INFO"), (["-v", "models"], "DEBUG"),
                                         (["models", "-v"], "DEBUG"), (["models", "-q"], "WARNING"),
                                         (["-q", "models", "-v"], "INFO")])
def test_v_and_q_work_before_and_after_the_subcommand(argv, level, capsys):
    import logging

    root = logging.getLogger()
    old = root.level
    try:
        assert main(argv) == 0
        assert logging.getLevelName(root.level) == level
    finally:
        root.setLevel(old)


def _raising(exc: BaseException):
    def main(args):
        raise exc
    return main


def _errors(monkeypatch, caplog, exc: BaseException) -> tuple[int, list]:
    """`lssed models` whose main raises ``exc`` (a fault injected from outside the package)."""
    import lssed.models.cli

    monkeypatch.setattr(lssed.models.cli, "main", _raising(exc))
    caplog.clear()
    rc = main(["models"])
    return rc, [r for r in caplog.records if r.levelname == "ERROR"]


def test_user_errors_are_one_line_with_status_2(monkeypatch, caplog):
    from lssed.config import ConfigError
    from lssed.errors import InputNotFoundError, UserError
    from lssed.storage import StorageError

    for exc in (ConfigError("train.lr=0: must be > 0"), StorageError("no bucket"), UserError("bad input"),
                InputNotFoundError("features/x has no _SUCCESS.json"), FileNotFoundError("label CSV x does not exist")):
        rc, errors = _errors(monkeypatch, caplog, exc)
        assert rc == 2, exc
        assert [r.getMessage() for r in errors] == [str(exc)] and errors[0].exc_info is None


def test_other_errors_are_bugs_shown_with_their_traceback_and_status_1(monkeypatch, caplog):
    """A ValueError (pyarrow's ArrowInvalid is one) or an OS-level missing file is not a usage error."""
    import errno

    import pyarrow as pa

    for exc in (ValueError("cannot reshape array"), pa.ArrowInvalid("Invalid: schema mismatch"),
                FileNotFoundError(errno.ENOENT, "No such file or directory", "/tmp/internal/state.pt"),
                KeyError("val_ua"), AssertionError("unreachable")):
        rc, errors = _errors(monkeypatch, caplog, exc)
        assert rc == 1, exc
        assert len(errors) == 1 and errors[0].exc_info is not None and errors[0].exc_info[1] is exc
        assert "unexpected error" in errors[0].getMessage()
    rc, _ = _errors(monkeypatch, caplog, KeyboardInterrupt())
    assert rc == 130


# --------------------------------------------------------------------------- one rule for --out and --force


WRITERS = {"preprocess": ["manifest.parquet"], "import-features": ["feats/", "labels.csv"],
           "train": ["features/x"], "tune": ["features/x"], "run": []}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_storage_writer_takes_out_defaulting_to_storage_root_and_force(name):
    from lssed.cliutil import config_from_args

    parser = build_parser(name)
    args = parser.parse_args([name, *WRITERS[name], "--set", "storage.root=s3://b/from-config"])
    assert args.out is None and args.force is False
    assert config_from_args(args).storage.root == "s3://b/from-config"
    args = parser.parse_args([name, *WRITERS[name], "--out", "runs/x: y", "--force"])  # a path, not YAML
    assert config_from_args(args).storage.root == "runs/x: y" and args.force is True


def test_report_goes_beside_runs_by_default():
    from lssed.report.cli import report_destination

    assert report_destination("s3://b/root", None) == "s3://b/root/report"
    assert report_destination("s3://b/root/runs/", None) == "s3://b/root/report"
    assert report_destination("/data/root", "/elsewhere") == "/elsewhere"


def test_full_py_is_lssed_run():
    proc = subprocess.run([sys.executable, str(REPO / "workflows" / "full.py"), "--help"], capture_output=True,
                          text=True, timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert "usage: lssed run" in proc.stdout and "--force" in proc.stdout and "--out" in proc.stdout
