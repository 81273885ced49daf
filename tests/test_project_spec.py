"""MLproject files: parsing, parameter types, and commands that keep every value quoted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitml.projects.spec import EntryPoint, Project, ProjectError, ResolvedCommand, load_project

ARGV_PY = "import json, sys\nprint(json.dumps(sys.argv[1:]))\n"

WINE = """\
name: tutorial

python_env: python_env.yaml

entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      l1_ratio: {type: float, default: 0.1}
    command: "python train.py {alpha} {l1_ratio}"
"""

HOSTILE = [
    "; rm -rf canary",
    "a b  c",
    'it\'s "quoted"',
    "$(touch pwned)",
    "`touch pwned`",
    "$HOME",
    "*",
    "x\ny; touch pwned",
    "",
    "--flag",
    "{alpha}",
    "back\\slash",
    "é ü ☃",
    "' ; touch pwned ; '",
]


def make(root: Path, mlproject: str | None = None, **files: str) -> Path:
    """A project directory with an MLproject (if given) and files (name -> text)."""
    root.mkdir(parents=True, exist_ok=True)
    if mlproject is not None:
        (root / "MLproject").write_text(mlproject)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run_bash(command: str, cwd: Path) -> list[str]:
    """Run ``command`` as ``gitml run`` does (bash -c), with this venv's python first on PATH."""
    env = dict(
        os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    )
    out = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def run_argv(argv: list[str], cwd: Path) -> list[str]:
    argv = [sys.executable, *argv[1:]] if argv[0] == "python" else argv
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def error(fn, *args) -> str:
    with pytest.raises(ProjectError) as e:
        fn(*args)
    return str(e.value)


# --- parsing -----------------------------------------------------------------------------


def test_load_project_parses_mlflow_wine_example(tmp_path):
    root = make(tmp_path / "wine", WINE, **{"python_env.yaml": "python: '3.11'\n", "train.py": ""})
    project = load_project(root)
    assert isinstance(project, Project)
    assert project.name == "tutorial"
    assert project.python_env == "python_env.yaml"
    assert project.conda_env is None and project.docker_env is None
    assert project.env_kind == "python_env"
    assert project.mlproject == root / "MLproject"
    main = project.entry_point("main")
    assert isinstance(main, EntryPoint)
    assert [(p.name, p.type, p.default) for p in main.parameters.values()] == [
        ("alpha", "float", "0.5"),
        ("l1_ratio", "float", "0.1"),
    ]
    assert main.placeholders() == ["alpha", "l1_ratio"]

    resolved = main.resolve({}, tmp_path)
    assert resolved == ResolvedCommand(
        {"alpha": "0.5", "l1_ratio": "0.1"}, "python train.py 0.5 0.1", None
    )
    resolved = main.resolve({"alpha": "0.42"}, tmp_path)
    assert resolved.command == "python train.py 0.42 0.1"
    assert resolved.params == {"alpha": "0.42", "l1_ratio": "0.1"}


def test_mlproject_file_name_is_case_insensitive(tmp_path):
    root = make(tmp_path / "p")
    (root / "mlproject").write_text("name: lower\nentry_points:\n  main:\n    command: echo hi\n")
    project = load_project(root)
    assert project.name == "lower"
    assert project.mlproject == root / "mlproject"
    assert project.entry_point("main").resolve({}, root).command == "echo hi"


def test_parameter_shorthand_is_a_type_with_no_default(tmp_path):
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      n: int\n      name: string\n"
        "    command: echo {n} {name}\n",
    )
    ep = load_project(root).entry_point("main")
    assert ep.parameters["n"].type == "int" and ep.parameters["n"].default is None
    assert ep.resolve({"n": "3", "name": "x"}, root).command == "echo 3 x"
    msg = error(ep.resolve, {"name": "x"}, root)
    assert "'n' (int)" in msg and "'main'" in msg and "MLproject" in msg


def test_parameter_without_type_is_a_string(tmp_path):
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      flag: {default: true}\n"
        "    command: echo {flag}\n",
    )
    ep = load_project(root).entry_point("main")
    assert ep.parameters["flag"].type == "string"
    assert ep.resolve({}, root).command == "echo True"  # str() of the YAML value, as MLflow


def test_undeclared_params_are_appended_in_the_order_given(tmp_path):
    root = make(tmp_path / "p", WINE, **{"python_env.yaml": "python: '3.11'\n"})
    resolved = (
        load_project(root)
        .entry_point("main")
        .resolve({"zeta": "1", "l1_ratio": "0.2", "beta": "a b"}, root)
    )
    assert resolved.command == "python train.py 0.5 0.2 --zeta 1 --beta 'a b'"
    assert list(resolved.params) == ["alpha", "l1_ratio", "zeta", "beta"]
    assert resolved.params["beta"] == "a b"


def test_empty_mlproject_is_a_project_with_no_entry_points(tmp_path):
    root = make(tmp_path / "p", "", **{"train.py": ARGV_PY})
    project = load_project(root)
    assert project.entry_points == {} and project.name is None
    assert project.entry_point("train.py").resolve({}, root).argv == ["python", "train.py"]


# --- quoting: values are data, never shell -------------------------------------------------


def test_hostile_values_round_trip_through_bash(tmp_path):
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      a: string\n      b: string\n"
        "    command: python argv.py {a} --b={b} {{literal}}\n",
        **{"argv.py": ARGV_PY},
    )
    (root / "canary").mkdir()
    ep = load_project(root).entry_point("main")
    for value in HOSTILE:
        extra_key = "k; touch pwned"
        resolved = ep.resolve({"a": value, "b": value, extra_key: value}, root)
        assert resolved.argv is None
        got = run_bash(resolved.command, root)
        assert got == [value, f"--b={value}", "{literal}", f"--{extra_key}", value], value
    assert (root / "canary").is_dir()
    assert not (root / "pwned").exists()


# Every quoting context a placeholder can sit in, with what the program must receive for value v.
QUOTED_TEMPLATE = (
    """python argv.py {a} 'sq={a}' "dq={a}" $'ansi={a}' $"loc={a}" "$(printf '%s.' {a})" """
    """"x$(printf '%s.' "{a}")y" 'it''s={a}'"""
)


def quoted_expectation(v: str) -> list[str]:
    return [v, f"sq={v}", f"dq={v}", f"ansi={v}", f"loc={v}", f"{v}.", f"x{v}.y", f"its={v}"]


QUOTING_HOSTILE = [
    *HOSTILE,
    '"; touch pwned; "',
    "\\",
    "ends with \\",
    '\\"',
    "'",
    "!",
    "!! !$ !-1",
    "$'\\x41'",
    "\\n\\t",
    "\n",
    "\nleading and trailing\n",
    "}",
    "${HOME}",
    "$((1+1))",
    "%s",
    "-n",
    "漢字 café ☃ \u202e",
]


def test_values_reach_the_program_literally_however_the_placeholder_is_quoted(tmp_path):
    """issue 14: a placeholder inside "...", '...' or $'...' is written for that context, not shlex.quoted.

    MLflow's ``shlex.quote`` inserts ``'...'``, which has no power inside
    ``"..."``: ``echo "label={label}"`` with ``$(touch X)`` ran the command.
    """
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      a: string\n"
        f"    command: {json.dumps(QUOTED_TEMPLATE)}\n",
        **{"argv.py": ARGV_PY},
    )
    (root / "canary").mkdir()
    ep = load_project(root).entry_point("main")
    for value in QUOTING_HOSTILE:
        resolved = ep.resolve({"a": value, "extra": value}, root)
        assert run_bash(resolved.command, root) == [*quoted_expectation(value), "--extra", value], value
    assert (root / "canary").is_dir()
    assert not list(root.glob("pwned*"))


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("echo `echo {a}`", "inside `...`"),
        ('echo "`echo {a}`"', "inside `...`"),
        ("echo x # {a}", "comment"),
        ("cat <<EOF\n{a}\nEOF", "here-document"),
        ("cat <<'EOF'\n{a}\nEOF", "here-document"),
        ("echo ${{HOME:-{a}}}", "inside ${...}"),
        ("echo ${a}", "follows a '$'"),
        ('echo "${a}"', "follows a '$'"),
        ("echo \\{a}", "follows a backslash"),
        ('echo "\\{a}"', "follows a backslash"),
        ("echo $'\\{a}'", "follows a backslash"),
        ("echo $(( {a} + 1 ))", "arithmetic"),
        ("(( {a} ))", "arithmetic"),
        ("echo $[{a}]", "arithmetic"),
        ("echo $(case x in x) echo {a};; esac)", "case statement"),
    ],
)
def test_placeholders_where_no_quoting_keeps_a_value_literal_are_refused(tmp_path, command, reason):
    """issue 14: backticks, comments, here-documents, ${...}, arithmetic: no encoding is safe, so refuse."""
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      a: string\n"
        f"    command: {json.dumps(command)}\n",
    )
    msg = error(load_project(root).entry_point("main").resolve, {"a": "$(touch pwned)"}, root)
    assert "'main'" in msg and "{a}" in msg and reason in msg, msg


@pytest.mark.parametrize(
    ("command", "reason"),
    [("python argv.py # trains", "comment"), ("python argv.py 'open", "inside '...'"),
     ("cat <<EOF\nhi\nEOF", "here-document")],
)
def test_undeclared_params_are_not_appended_into_a_comment_quote_or_heredoc(tmp_path, command, reason):
    """issue 14: `` --key 'v'`` after a comment would run the line after a newline in v."""
    root = make(tmp_path / "p", "entry_points:\n  main:\n" f"    command: {json.dumps(command)}\n")
    ep = load_project(root).entry_point("main")
    assert ep.resolve({}, root).command == command
    msg = error(ep.resolve, {"k": "v\ntouch pwned"}, root)
    assert "'k'" in msg and reason in msg and "declare" in msg, msg


def test_script_entry_point_passes_hostile_values_as_argv(tmp_path):
    root = make(tmp_path / "p", **{"argv.py": ARGV_PY})
    (root / "canary").mkdir()
    ep = load_project(root).entry_point("argv.py")
    params = {f"p{i}": v for i, v in enumerate(HOSTILE)}
    resolved = ep.resolve(params, tmp_path)
    expected = [x for k, v in params.items() for x in (f"--{k}", v)]
    assert resolved.argv == ["python", "argv.py", *expected]
    assert run_argv(resolved.argv, root) == expected
    # the command string shown to the user runs the same thing under bash
    assert run_bash(resolved.command, root) == expected
    assert (root / "canary").is_dir() and not (root / "pwned").exists()


def test_braces_in_values_are_not_formatted_again(tmp_path):
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      a: string\n      b: {default: B}\n"
        "    command: echo {a} {{b}} {b}\n",
    )
    assert (
        load_project(root).entry_point("main").resolve({"a": "{b}"}, root).command
        == "echo '{b}' {b} B"
    )


# --- types -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ptype", "value", "ok"),
    [
        ("int", "3", True),
        ("int", "-3", True),
        ("int", "3.5", False),
        ("int", "3.0", False),
        ("int", "abc", False),
        ("int", " 3", False),
        ("int", "1_000", False),
        ("int", "", False),
        ("float", "3", True),
        ("float", "0.5", True),
        ("float", "1e-3", True),
        ("float", "-.5", True),
        ("float", "abc", False),
        ("float", "0.5 ", False),
        ("float", "", False),
        ("string", "anything at all", True),
    ],
)
def test_values_must_parse_as_their_type(tmp_path, ptype, value, ok):
    root = make(
        tmp_path / "p",
        f"entry_points:\n  fit:\n    parameters:\n      x: {ptype}\n    command: echo {{x}}\n",
    )
    ep = load_project(root).entry_point("fit")
    if ok:
        assert ep.resolve({"x": value}, root).params == {"x": value}
    else:
        msg = error(ep.resolve, {"x": value}, root)
        assert "'x'" in msg and repr(value) in msg and ptype in msg and "'fit'" in msg


def test_default_that_does_not_parse_as_its_type_fails_at_load(tmp_path):
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      n: {type: int, default: 2.5}\n"
        "    command: echo {n}\n",
    )
    msg = error(load_project, root)
    assert (
        "default" in msg and "'n'" in msg and "'2.5'" in msg and "int" in msg and "MLproject" in msg
    )


def test_path_params_are_made_absolute_against_cwd(tmp_path):
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      data: path\n"
        "      out: {type: path, default: data.csv}\n    command: echo {data} {out}\n",
    )
    cwd = make(tmp_path / "elsewhere", **{"data.csv": "x\n", "sub/in.csv": "y\n"})
    ep = load_project(root).entry_point("main")
    resolved = ep.resolve({"data": "sub/in.csv"}, cwd)
    assert resolved.params == {"data": str(cwd / "sub" / "in.csv"), "out": str(cwd / "data.csv")}
    # file:// URIs and absolute paths do not depend on cwd
    for value in ((cwd / "sub" / "in.csv").as_uri(), str(cwd / "sub" / "in.csv")):
        assert ep.resolve({"data": value}, cwd).params["data"] == str(cwd / "sub" / "in.csv")

    msg = error(ep.resolve, {"data": "s3://bucket/data.csv"}, cwd)
    assert "'data'" in msg and "s3://bucket/data.csv" in msg and "only supports local paths" in msg
    msg = error(ep.resolve, {"data": "missing.csv"}, cwd)
    assert "'missing.csv'" in msg and str(cwd / "missing.csv") in msg


def test_uri_params_keep_a_scheme_and_make_plain_paths_absolute(tmp_path):
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      src: uri\n    command: echo {src}\n",
    )
    ep = load_project(root).entry_point("main")
    assert ep.resolve({"src": "s3://bucket/key"}, tmp_path).params["src"] == "s3://bucket/key"
    assert ep.resolve({"src": "runs:/abc/model"}, tmp_path).params["src"] == "runs:/abc/model"
    assert ep.resolve({"src": "models/m"}, tmp_path).params["src"] == str(tmp_path / "models" / "m")


def test_unknown_type_is_an_error(tmp_path):
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      x: double\n    command: echo {x}\n",
    )
    msg = error(load_project, root)
    assert "'x'" in msg and "'double'" in msg and "float, int, string, path, uri" in msg


# --- templates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("echo {missing}", ["{missing}", "not a declared parameter", "declared: a"]),
        ("echo {}", ["positional"]),
        ("echo {0}", ["positional"]),
        ("echo {a!r}", ["{a!r}", "plain {name}"]),
        ("echo {a:.3}", ["{a:.3}", "plain {name}"]),
        ("echo {a.upper}", ["{a.upper}", "plain {name}"]),
        ("echo {a", ["not a valid template", "{{"]),
        ("echo a}", ["not a valid template"]),
    ],
)
def test_bad_placeholders_are_errors_before_running(tmp_path, command, words):
    root = make(
        tmp_path / "p",
        f"entry_points:\n  main:\n    parameters:\n      a: string\n"
        f"    command: {json.dumps(command)}\n",
    )
    ep = load_project(root).entry_point("main")
    msg = error(ep.resolve, {"a": "x", "missing": "y"}, root)
    for word in words:
        assert word in msg
    assert "'main'" in msg


# --- entry points ----------------------------------------------------------------------------


def test_unknown_entry_point_lists_the_declared_ones(tmp_path):
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    command: echo 1\n  validate:\n    command: echo 2\n",
    )
    msg = error(load_project(root).entry_point, "train")
    assert "'train'" in msg and "main, validate" in msg and str(root / "MLproject") in msg


def test_mlproject_also_runs_undeclared_script_files(tmp_path):
    root = make(
        tmp_path / "p", "entry_points:\n  main:\n    command: echo 1\n", **{"src/argv.py": ARGV_PY}
    )
    resolved = load_project(root).entry_point("src/argv.py").resolve({"n": "2"}, root)
    assert resolved.argv == ["python", "src/argv.py", "--n", "2"]
    assert resolved.command == "python src/argv.py --n 2"
    assert run_argv(resolved.argv, root) == ["--n", "2"]
    msg = error(load_project(root).entry_point, "nope.py")
    assert "'nope.py'" in msg and "no file" in msg


def test_no_mlproject_runs_py_and_sh_files(tmp_path):
    root = make(
        tmp_path / "p",
        **{
            "train.py": ARGV_PY,
            "run.sh": 'printf "%s\\n" "$@" | python -c "import json,sys; '
            'print(json.dumps(sys.stdin.read().splitlines()))"\n',
        },
    )
    project = load_project(root)
    assert project.mlproject is None and project.entry_points == {} and project.env_kind is None
    py = project.entry_point("train.py").resolve({"alpha": "0.5"}, root)
    assert py == ResolvedCommand(
        {"alpha": "0.5"}, "python train.py --alpha 0.5", ["python", "train.py", "--alpha", "0.5"]
    )
    sh = project.entry_point("run.sh").resolve({"msg": "a b"}, root)
    assert sh.argv == ["bash", "run.sh", "--msg", "a b"]
    env = dict(
        os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    )
    out = subprocess.run(sh.argv, cwd=root, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["--msg", "a b"]


def test_script_named_like_an_option_is_not_read_as_one(tmp_path):
    root = make(tmp_path / "p", **{"-c.py": ARGV_PY})
    resolved = load_project(root).entry_point("-c.py").resolve({"x": "1"}, root)
    assert resolved.argv == ["python", "./-c.py", "--x", "1"]
    assert run_argv(resolved.argv, root) == ["--x", "1"]


def test_no_mlproject_main_says_how_to_name_a_file(tmp_path):
    root = make(tmp_path / "p", **{"train.py": ARGV_PY})
    msg = error(load_project(root).entry_point, "main")
    assert "no MLproject" in msg and ".py" in msg and ".sh" in msg and "train.py" in msg


@pytest.mark.parametrize(
    "name", ["../outside.py", "/etc/x.py", "sub/../../outside.py", "link/outside.py", "nope.py"]
)
def test_script_entry_points_stay_inside_the_project(tmp_path, name):
    make(tmp_path, **{"outside.py": ARGV_PY})
    root = make(tmp_path / "p", **{"sub/x.py": ARGV_PY})
    (root / "link").symlink_to(tmp_path)
    msg = error(load_project(root).entry_point, name)
    assert repr(name) in msg


# --- file errors -----------------------------------------------------------------------------


def test_yaml_errors_name_the_file_and_line(tmp_path):
    root = make(tmp_path / "p", "name: x\nentry_points:\n  main:\n\tcommand: echo\n")
    msg = error(load_project, root)
    assert str(root / "MLproject") in msg and "line 4" in msg and "not valid YAML" in msg


def test_only_safe_yaml_is_loaded(tmp_path):
    root = make(tmp_path / "p", "name: !!python/object/apply:os.system ['touch pwned']\n")
    assert "not valid YAML" in error(load_project, root)
    assert not (root / "pwned").exists()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- a\n- b\n", ["must be a YAML mapping", "not a list"]),
        ("just text\n", ["must be a YAML mapping", "not a string"]),
        ("entry_points: [main]\n", ["entry_points must be a mapping"]),
        ("entry_points:\n  main: python x.py\n", ["'main'", "must be a mapping with a command"]),
        ("entry_points:\n  main:\n    parameters: {a: float}\n", ["'main' has no command"]),
        (
            "entry_points:\n  main:\n    command: [a, b]\n",
            ["command of entry point 'main' must be a string"],
        ),
        (
            "entry_points:\n  main:\n    parameters: [a]\n    command: x\n",
            ["parameters of entry point 'main'"],
        ),
        ("entry_points:\n  main:\n    parameters: {a: 3}\n    command: x\n", ["'a'", "type name"]),
        (
            "entry_points:\n  main:\n    parameters: {a: {default: [1]}}\n    command: x\n",
            ["'a'", "single value"],
        ),
    ],
)
def test_malformed_mlproject_errors_name_the_file_and_problem(tmp_path, text, words):
    root = make(tmp_path / "p", text)
    msg = error(load_project, root)
    assert str(root / "MLproject") in msg
    for word in words:
        assert word in msg


def test_missing_project_directory_is_an_error(tmp_path):
    assert str(tmp_path / "nope") in error(load_project, tmp_path / "nope")


# --- environments ----------------------------------------------------------------------------


def test_two_env_declarations_are_an_error(tmp_path):
    root = make(
        tmp_path / "p",
        "python_env: python_env.yaml\nconda_env: conda.yaml\nentry_points: {}\n",
        **{"python_env.yaml": "", "conda.yaml": ""},
    )
    msg = error(load_project, root)
    assert "python_env and conda_env" in msg and "at most one" in msg and "MLproject" in msg


@pytest.mark.parametrize(
    "value",
    [
        "/etc/hosts",
        "../python_env.yaml",
        "envs/../../python_env.yaml",
        "link/python_env.yaml",
        "~/python_env.yaml",
    ],
)
def test_env_file_paths_stay_inside_the_project(tmp_path, value):
    make(tmp_path, **{"python_env.yaml": "python: '3.11'\n"})
    root = make(tmp_path / "p", f"python_env: {value}\n")
    (root / "link").symlink_to(tmp_path)
    msg = error(load_project, root)
    assert repr(value) in msg and "inside the project" in msg


def test_env_file_must_exist(tmp_path):
    root = make(tmp_path / "p", "conda_env: envs/conda.yaml\n")
    msg = error(load_project, root)
    assert "conda_env 'envs/conda.yaml'" in msg and "no such file" in msg
    make(root, **{"envs/conda.yaml": "name: x\n"})
    assert load_project(root).conda_env == "envs/conda.yaml"


def test_docker_env_needs_an_image(tmp_path):
    root = make(
        tmp_path / "p",
        "docker_env:\n  image: python:3.11\n  volumes: [/data:/data]\n"
        "  environment: [HOME, [MODE, train]]\n",
    )
    project = load_project(root)
    assert project.docker_env["image"] == "python:3.11" and project.env_kind == "docker_env"
    for bad, word in [
        ("docker_env: {volumes: []}\n", "image"),
        ("docker_env: {image: x, volumes: /data}\n", "volumes"),
        ("docker_env: {image: x, environment: [[A]]}\n", "environment"),
    ]:
        make(root, bad)
        assert word in error(load_project, root)


def test_default_env_files_are_picked_up_as_in_mlflow(tmp_path):
    root = make(tmp_path / "p", **{"conda.yaml": "name: x\n", "train.py": ""})
    assert load_project(root).conda_env == "conda.yaml"
    make(root, "entry_points: {}\n", **{"python_env.yaml": "python: '3.11'\n"})
    project = load_project(root)
    assert project.python_env == "python_env.yaml" and project.conda_env is None


# --- compatibility with MLflow itself ---------------------------------------------------------


def test_commands_match_mlflow(tmp_path, monkeypatch):
    spec = pytest.importorskip("mlflow.projects._project_spec")
    monkeypatch.setenv("SHELL", "bash")  # MLflow runs .sh files with $SHELL
    data = make(tmp_path / "data", **{"in.csv": "x\n"})
    root = make(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      alpha: {type: float, default: 0.5}\n"
        "      name: {type: string, default: 'a b'}\n      src: uri\n      data: path\n"
        "    command: python train.py --alpha {alpha} {name} {src} {data} {{x}}\n",
        **{"train.py": "", "run.sh": ""},
    )
    ours, theirs = load_project(root), spec.load_project(str(root))
    storage = tmp_path / "storage"
    storage.mkdir()
    cases = [
        ("main", {"src": "s3://b/k", "data": str(data / "in.csv")}),
        (
            "main",
            {
                "src": "runs:/r/m",
                "data": str(data),
                "alpha": "3",
                "name": "it's; $(x)",
                "extra": "v w",
                "odd key": '"q"',
            },
        ),
        ("train.py", {"alpha": "0.5", "msg": "hello world; rm -rf x"}),
        ("run.sh", {"k": "$HOME"}),
    ]
    for entry, params in cases:
        expected = theirs.get_entry_point(entry).compute_command(params, str(storage))
        assert ours.entry_point(entry).resolve(params, tmp_path).command == expected
