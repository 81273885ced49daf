"""Tests for gitml.tracking.validation: MLflow 3's rules plus gitml's git-path rules."""

from __future__ import annotations

import enum
import math
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from gitml.errors import GitmlError, InvalidName, InvalidValue, ParamAlreadyLogged
from gitml.tracking import validation as v
from gitml.tracking.validation import (
    MAX_ENTITIES_PER_BATCH,
    MAX_ENTITY_KEY_LENGTH,
    MAX_EXPERIMENT_NAME_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
    validate_batch_limits,
    validate_experiment_name,
    validate_metric_key,
    validate_metric_step,
    validate_metric_value,
    validate_param_key,
    validate_param_rewrite,
    validate_param_value,
    validate_run_id,
    validate_tag_key,
    validate_tag_value,
    validate_timestamp,
)

KEY_VALIDATORS = [
    pytest.param(validate_metric_key, "metric key", id="metric"),
    pytest.param(validate_param_key, "param key", id="param"),
    pytest.param(validate_tag_key, "tag key", id="tag"),
]


def shown(value: object) -> str:
    """The part of repr(value) every error message must contain."""
    return repr(value)[:100]


def check_error(exc: type[GitmlError], func, *args: object, names: object) -> str:
    """Call func(*args), assert it raises `exc` naming `names`; return the message."""
    with pytest.raises(exc) as info:
        func(*args)
    message = str(info.value)
    assert shown(names) in message
    assert info.value.message == message
    return message


# --- keys: MLflow's rules, for every kind of key ---------------------------------------


@pytest.mark.parametrize("validate, kind", KEY_VALIDATORS)
@pytest.mark.parametrize(
    "key",
    [
        "loss",
        "train/loss",
        "a.b-c d:e_f",
        "ünïcödé/ключ/損失",
        "x" * MAX_ENTITY_KEY_LENGTH,
        "a.b/c..d/...x",
        " lead and trail ",
        "mlflow.runName",
        ".hidden",
        "0.tsvx/0.csv/x0.tsv",
    ],
)
def test_key_valid_is_returned(validate, kind, key):
    assert validate(key) == key


@pytest.mark.parametrize("validate, kind", KEY_VALIDATORS)
def test_key_str_subclass_returns_plain_str(validate, kind):
    class Key(str, enum.Enum):
        LOSS = "loss"

    result = validate(Key.LOSS)
    assert result == "loss" and type(result) is str


@pytest.mark.parametrize("validate, kind", KEY_VALIDATORS)
def test_key_one_over_length_limit_refused(validate, kind):
    key = "k" * (MAX_ENTITY_KEY_LENGTH + 1)
    message = check_error(InvalidName, validate, key, names=key)
    assert f"Invalid {kind}" in message
    assert str(MAX_ENTITY_KEY_LENGTH) in message and str(MAX_ENTITY_KEY_LENGTH + 1) in message
    assert len(message) < 300  # the value is cut, not pasted whole


@pytest.mark.parametrize("validate, kind", KEY_VALIDATORS)
@pytest.mark.parametrize("key", [None, 5, 1.5, b"loss", ["loss"]])
def test_key_not_a_string_refused(validate, kind, key):
    message = check_error(InvalidName, validate, key, names=key)
    assert f"Invalid {kind}" in message and "must be a string" in message


@pytest.mark.parametrize("validate, kind", KEY_VALIDATORS)
def test_key_empty_refused(validate, kind):
    message = check_error(InvalidName, validate, "", names="")
    assert "must not be empty" in message


@pytest.mark.parametrize("validate, kind", KEY_VALIDATORS)
@pytest.mark.parametrize("key", ["a\x00b", "a\tb", "a\nb", "a\rb", "a\x7fb", "loss\n"])
def test_key_control_character_refused(validate, kind, key):
    """`loss\\n` guards against `^...$` with re.match, which accepts a trailing newline."""
    message = check_error(InvalidName, validate, key, names=key)
    assert "control character" in message and "may only contain" in message


@pytest.mark.parametrize("validate, kind", KEY_VALIDATORS)
@pytest.mark.parametrize("key", ["a*b", "a\\b", "a~b", "a,b", "a=b", "a\u200cb", "a\ud800b"])
def test_key_bad_character_refused(validate, kind, key):
    message = check_error(InvalidName, validate, key, names=key)
    assert "may only contain" in message and "slashes (/)" in message


@pytest.mark.parametrize("validate, kind", KEY_VALIDATORS)
@pytest.mark.parametrize(
    "key",
    ["/a", "a/", "/", "a//b", ".", "..", "./a", "a/.", "a/./b", "a/../b", "../a", "a/.."],
)
def test_key_path_that_normalises_differently_refused(validate, kind, key):
    message = check_error(InvalidName, validate, key, names=key)
    assert "must not start or end with '/'" in message


@pytest.mark.parametrize("validate, kind", KEY_VALIDATORS)
@pytest.mark.parametrize("key", ["..a", "...", "..a/b"])
def test_key_starting_with_two_dots_refused_as_mlflow_does(validate, kind, key):
    message = check_error(InvalidName, validate, key, names=key)
    assert "must not start with '..'" in message


# --- metric keys: gitml's extra rules, since the key is a tree path ---------------------


@pytest.mark.parametrize(
    "key, component",
    [
        (".git", ".git"),
        (".GIT/loss", ".GIT"),
        ("a/.Git", ".Git"),
        ("a/.git.", ".git."),
        ("a/.git ", ".git "),
        ("a/.git. .", ".git. ."),
        ("a/.git:stream", ".git:stream"),
        (".gitmodules", ".gitmodules"),
        ("x/.GitModules /y", ".GitModules "),
        ("x/.gitattributes", ".gitattributes"),
        ("x/.GITATTRIBUTES:x", ".GITATTRIBUTES:x"),
    ],
)
def test_metric_key_git_reserved_component_refused(key, component):
    message = check_error(InvalidName, validate_metric_key, key, names=key)
    assert "Invalid metric key" in message
    assert repr(component) in message and "git" in message


@pytest.mark.parametrize("key, component", [("0.tsv", "0.tsv"), ("loss/12.tsv", "12.tsv")])
def test_metric_key_chunk_like_component_refused(key, component):
    message = check_error(InvalidName, validate_metric_key, key, names=key)
    assert repr(component) in message and "chunk" in message


@pytest.mark.parametrize("key", ["0.tsv/x", "a/.git", ".gitmodules", "a/.git:x"])
def test_param_and_tag_keys_skip_the_tree_path_rules(key):
    assert validate_param_key(key) == key
    assert validate_tag_key(key) == key


@pytest.mark.parametrize(
    "key", [".gitignore", ".github/x", "a.git", ".gitx", ".git_", "x/.mailmap", "0.TSV", "0.tsv.x"]
)
def test_metric_key_near_reserved_names_accepted(key):
    assert validate_metric_key(key) == key


# --- metric values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (0, 0.0),
        (-3, -3.0),
        (0.5, 0.5),
        (2**53, float(2**53)),
        (1e308, 1e308),
        (Decimal("1.25"), 1.25),
        (Fraction(1, 4), 0.25),
        (math.inf, math.inf),
        (-math.inf, -math.inf),
    ],
)
def test_metric_value_number_returned_as_float(value, expected):
    result = validate_metric_value("loss", value)
    assert result == expected and type(result) is float


def test_metric_value_nan_accepted():
    assert math.isnan(validate_metric_value("loss", math.nan))
    assert math.isnan(validate_metric_value("loss", Decimal("NaN")))


class Tensorish:
    """A scalar-like object with only __float__, like a 0-d tensor."""

    def __float__(self) -> float:
        return 0.75


def test_metric_value_object_with_float_accepted():
    assert validate_metric_value("loss", Tensorish()) == 0.75


@pytest.mark.parametrize(
    "value",
    [True, False, "1.0", "nan", b"1", None, 1 + 2j, [1.0], (1.0,), {"v": 1.0}, object()],
)
def test_metric_value_not_a_real_number_refused(value):
    message = check_error(InvalidValue, validate_metric_value, "loss", value, names=value)
    assert "'loss'" in message and "real number" in message


def test_metric_value_too_large_int_refused():
    value = 10**400
    message = check_error(InvalidValue, validate_metric_value, "loss", value, names=value)
    assert "64-bit float" in message and len(message) < 300


def test_metric_value_int_too_long_to_repr_refused():
    value = 10**5000  # repr() itself fails past sys.get_int_max_str_digits()
    with pytest.raises(InvalidValue, match="int too large to show.*64-bit float"):
        validate_metric_value("loss", value)


def test_metric_value_float_conversion_failure_refused():
    value = Decimal("sNaN")
    message = check_error(InvalidValue, validate_metric_value, "loss", value, names=value)
    assert "real number" in message


def test_metric_value_numpy_scalars_accepted():
    np = pytest.importorskip("numpy")
    assert validate_metric_value("loss", np.float64(0.5)) == 0.5
    assert validate_metric_value("loss", np.float32(0.5)) == 0.5
    assert validate_metric_value("loss", np.float16(0.5)) == 0.5
    assert validate_metric_value("loss", np.int64(7)) == 7.0
    assert validate_metric_value("loss", np.uint8(7)) == 7.0
    assert validate_metric_value("loss", np.array(0.5)) == 0.5
    assert math.isnan(validate_metric_value("loss", np.float32("nan")))
    assert validate_metric_value("loss", np.float64("-inf")) == -math.inf
    assert type(validate_metric_value("loss", np.float32(0.5))) is float


def test_metric_value_numpy_non_numbers_refused():
    np = pytest.importorskip("numpy")
    for value in [np.bool_(True), np.complex128(1 + 2j), np.array("1.5"), np.array([1.0])]:
        message = check_error(InvalidValue, validate_metric_value, "loss", value, names=value)
        assert "real number" in message


# --- steps and timestamps --------------------------------------------------------------


@pytest.mark.parametrize(
    "step, expected",
    [(0, 0), (-5, -5), (2**63 - 1, 2**63 - 1), (-(2**63), -(2**63)), (3.0, 3), (Fraction(4), 4)],
)
def test_metric_step_whole_number_returned_as_int(step, expected):
    result = validate_metric_step(step)
    assert result == expected and type(result) is int


@pytest.mark.parametrize(
    "step", [1.5, math.nan, math.inf, True, "1", None, 2**63, -(2**63) - 1, [1]]
)
def test_metric_step_not_a_whole_int64_refused(step):
    message = check_error(InvalidValue, validate_metric_step, step, names=step)
    assert "Invalid metric step" in message and "whole number" in message


@pytest.mark.parametrize("ts", [0, 1_700_000_000_000, 2**63 - 1, 1.7e12])
def test_timestamp_valid_returned_as_int(ts):
    result = validate_timestamp(ts)
    assert result == int(ts) and type(result) is int


@pytest.mark.parametrize("ts", [-1, 2**63, 1.5, math.nan, False, "1700000000000", None])
def test_timestamp_invalid_refused(ts):
    message = check_error(InvalidValue, validate_timestamp, ts, names=ts)
    assert "Invalid timestamp" in message and "non-negative" in message


def test_step_and_timestamp_numpy_ints_accepted():
    np = pytest.importorskip("numpy")
    assert validate_metric_step(np.int64(3)) == 3
    assert validate_metric_step(np.array(4)) == 4
    assert validate_metric_step(np.float64(5.0)) == 5
    assert validate_timestamp(np.uint64(1_700_000_000_000)) == 1_700_000_000_000
    assert type(validate_metric_step(np.int32(3))) is int
    for bad in [np.bool_(True), np.float64(1.5), np.array([3])]:
        check_error(InvalidValue, validate_metric_step, bad, names=bad)


# --- param and tag values --------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [("adam", "adam"), (0.1, "0.1"), (3, "3"), (None, "None"), (True, "True"), ([1, 2], "[1, 2]")],
)
def test_param_and_tag_values_stringified_as_mlflow_does(value, expected):
    assert validate_param_value("p", value) == expected
    assert validate_tag_value("t", value) == expected


@pytest.mark.parametrize(
    "validate, limit, kind",
    [
        (validate_param_value, MAX_PARAM_VAL_LENGTH, "param"),
        (validate_tag_value, MAX_TAG_VAL_LENGTH, "tag"),
    ],
)
def test_value_length_limit(validate, limit, kind):
    assert (limit, kind) in [(6000, "param"), (8000, "tag")]
    at_limit = "v" * limit
    assert validate("k", at_limit) == at_limit
    over = "w" * (limit + 1)
    message = check_error(InvalidValue, validate, "k", over, names=over)
    assert f"for {kind} 'k'" in message
    assert str(limit) in message and str(limit + 1) in message
    assert len(message) < 400


def test_value_length_counts_characters_not_bytes():
    value = "é" * MAX_PARAM_VAL_LENGTH
    assert validate_param_value("k", value) == value


@pytest.mark.parametrize("validate", [validate_param_value, validate_tag_value])
def test_value_lone_surrogate_refused(validate):
    value = "a\ud800b"
    message = check_error(InvalidValue, validate, "k", value, names=value)
    assert "Unicode" in message


def test_value_with_newlines_and_tabs_accepted():
    note = "# Notes\n\tline two\r\n"
    assert validate_tag_value("mlflow.note.content", note) == note


# --- params are write-once -------------------------------------------------------------


def test_param_rewrite_same_value_allowed():
    assert validate_param_rewrite("lr", "0.1", "0.1") is None


def test_param_rewrite_different_value_refused():
    with pytest.raises(ParamAlreadyLogged) as info:
        validate_param_rewrite("lr", "0.1", "0.2")
    message = str(info.value)
    assert "'lr'" in message and "'0.1'" in message and "'0.2'" in message
    assert "write-once" in message
    assert isinstance(info.value, InvalidValue)


def test_param_rewrite_long_values_cut_in_message():
    old, new = "a" * 6000, "a" * 5999 + "b"
    with pytest.raises(ParamAlreadyLogged) as info:
        validate_param_rewrite("k", old, new)
    assert shown(old) in str(info.value) and len(str(info.value)) < 500


# --- experiment names ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Default", "team/project: run #1 (été)", "x" * MAX_EXPERIMENT_NAME_LENGTH, " "]
)
def test_experiment_name_valid_returned(name):
    assert validate_experiment_name(name) == name


@pytest.mark.parametrize(
    "name, rule",
    [
        ("", "must not be empty"),
        (None, "must be a string"),
        (5, "must be a string"),
        ("x" * (MAX_EXPERIMENT_NAME_LENGTH + 1), "the limit is 500"),
        ("a\nb", "control character"),
        ("a\x00b", "control character"),
        ("tab\t", "control character"),
    ],
)
def test_experiment_name_invalid_refused(name, rule):
    message = check_error(InvalidName, validate_experiment_name, name, names=name)
    assert "Invalid experiment name" in message and rule in message


# --- run ids ---------------------------------------------------------------------------


def test_run_id_valid_returned():
    run_id = "0123456789abcdef0123456789abcdef"
    assert validate_run_id(run_id) == run_id


@pytest.mark.parametrize(
    "run_id",
    [
        "0123456789ABCDEF0123456789abcdef",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "g123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef\n",
        "",
        None,
        0x0123456789ABCDEF,
    ],
)
def test_run_id_invalid_refused(run_id):
    message = check_error(InvalidName, validate_run_id, run_id, names=run_id)
    assert "Invalid run id" in message and "32 lowercase hexadecimal" in message


# --- batches ---------------------------------------------------------------------------


def test_batch_limits_match_mlflow():
    assert (MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH, MAX_ENTITIES_PER_BATCH) == (
        1000,
        100,
        1000,
    )


@pytest.mark.parametrize("sizes", [(0, 0, 0), (1000, 0, 0), (0, 100, 100), (800, 100, 100)])
def test_batch_within_limits_accepted(sizes):
    assert validate_batch_limits(*sizes) is None


@pytest.mark.parametrize(
    "sizes, count, what",
    [
        ((1001, 0, 0), 1001, "metrics"),
        ((0, 101, 0), 101, "params"),
        ((0, 0, 101), 101, "tags"),
        ((801, 100, 100), 1001, "together"),
    ],
)
def test_batch_over_limit_refused(sizes, count, what):
    with pytest.raises(InvalidValue) as info:
        validate_batch_limits(*sizes)
    assert str(count) in str(info.value) and what in str(info.value)


# --- the module itself -----------------------------------------------------------------


def test_errors_map_to_http_400():
    assert InvalidName.http_status == InvalidValue.http_status == 400


def test_module_imports_only_the_standard_library():
    code = (
        "import sys; import gitml.tracking.validation; "
        "bad = {'numpy', 'pandas', 'pygit2', 'click'} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(v.__file__).parents[2])


# --- interop: what a metric key becomes in git -----------------------------------------

git = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary")


@pytest.fixture
def git_env(tmp_path, monkeypatch):
    """An isolated git: HOME in tmp, no system config, a known identity."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Test\n\temail = test@example.com\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"]:
        monkeypatch.delenv(name, raising=False)
    for who in ["AUTHOR", "COMMITTER"]:
        for field in ["NAME", "EMAIL", "DATE"]:
            monkeypatch.delenv(f"GIT_{who}_{field}", raising=False)
    return tmp_path


def run_git(
    repo: Path, *args: str, stdin: str = "", check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        input=stdin,
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, **(env or {})},
    )


def bare_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def fsck(repo: Path, tree: str) -> subprocess.CompletedProcess[str]:
    commit = run_git(repo, "commit-tree", "-m", "metrics", tree).stdout.strip()
    run_git(repo, "update-ref", "refs/heads/main", commit)
    return run_git(repo, "fsck", "--strict", "--no-dangling", check=False)


@git
def test_metric_keys_accepted_make_trees_git_fsck_accepts(git_env):
    """Accepted keys also pass git's own path checks (update-index) and fsck --strict."""
    keys = [
        "loss",
        "train/loss",
        "a.b-c d:e_f",
        "ünïcödé/損失",
        " lead and trail ",
        ".gitignore",
        ".github/x",
        "a.git",
        ".gitx/.git_",
        "x/.mailmap",
        "0.TSV",
        "deep/" * 40 + "leaf",
        "k" * MAX_ENTITY_KEY_LENGTH,
    ]
    repo = bare_repo(git_env / "repo.git")
    blob = run_git(repo, "hash-object", "-w", "--stdin", stdin="0\t1.0\t0\n").stdout.strip()
    index_info = "".join(
        f"100644 {blob}\tmetrics/{validate_metric_key(key)}/0.tsv\n" for key in keys
    )
    index = {"GIT_INDEX_FILE": str(git_env / "index")}
    run_git(repo, "update-index", "--index-info", stdin=index_info, env=index)
    tree = run_git(repo, "write-tree", env=index).stdout.strip()
    result = fsck(repo, tree)
    assert result.returncode == 0, result.stderr
    listed = run_git(repo, "ls-tree", "-r", "--name-only", "-z", tree).stdout.split("\0")
    assert {f"metrics/{key}/0.tsv" for key in keys} <= set(listed)


@git
@pytest.mark.parametrize(
    "component", [".git", ".GIT", ".git. ", ".git:x", ".gitmodules", ".GitAttributes ", "."]
)
def test_components_refused_for_metrics_are_ones_git_fsck_refuses(git_env, component):
    """Why the git-reserved rule exists: such a tree entry fails `git fsck --strict`."""
    with pytest.raises(InvalidName):
        validate_metric_key(f"loss/{component}")
    repo = bare_repo(git_env / "repo.git")
    blob = run_git(repo, "hash-object", "-w", "--stdin", stdin="0\t1.0\t0\n").stdout.strip()
    chunk_tree = run_git(repo, "mktree", stdin=f"100644 blob {blob}\t0.tsv\n").stdout.strip()
    key_tree = run_git(repo, "mktree", stdin=f"040000 tree {chunk_tree}\t{component}\n")
    metrics = run_git(repo, "mktree", stdin=f"040000 tree {key_tree.stdout.strip()}\tloss\n")
    root = run_git(repo, "mktree", stdin=f"040000 tree {metrics.stdout.strip()}\tmetrics\n")
    result = fsck(repo, root.stdout.strip())
    assert result.returncode != 0, f"git fsck accepted {component!r}"
