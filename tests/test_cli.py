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
