"""The course: student export (stubs, no solution code left), the CLI, and both versions executed.

The student notebooks are executed here (each fails at its first check cell, within a few
seconds). Every instructor lab is executed, and its checks must pass, by ``wdlg run`` (so by
``make book`` in CI); here one instructor lab runs end to end.
"""
import ast
import os
from pathlib import Path

import nbformat
import pytest

from wdlg_core import cli, course

REPO = Path(__file__).resolve().parent.parent
LABS = course.list_labs()


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def _solution_functions(nb):
    """{function name: [ast.unparse of each body statement after the docstring]} of the solution cells."""
    out = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and "solution" in _tags(cell):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.FunctionDef):
                    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
                    out[node.name] = [ast.unparse(stmt) for stmt in body]
    return out


def test_five_labs_each_with_2_to_4_exercises_checks_and_a_quiz():
    assert [lab.name for lab in LABS] == ["lab1_gradients_leak", "lab2_label_restoration", "lab3_wdlg", "lab4_rgap",
                                          "lab5_defences"]
    for lab in LABS:
        nb = nbformat.read(lab.path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{lab.name} committed with outputs"
        exercises = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("```{exercise}")]
        solutions = [c for c in code if "solution" in _tags(c)]
        checks = [c for c in code if "check" in _tags(c)]
        assert 2 <= len(exercises) <= 4 and len(solutions) == len(exercises) == len(checks), lab.name
        # each solution is folded in the book: gated by solution-start / solution-end around it
        for i, cell in enumerate(nb.cells):
            if cell in solutions:
                assert nb.cells[i - 1].source.startswith("```{solution-start}"), (lab.name, i)
                assert nb.cells[i + 1].source.startswith("```{solution-end}"), (lab.name, i)
                assert nb.cells[i + 2] in checks, f"{lab.name}: the check must follow its exercise's solution"
        assert "Learning goals" in nb.cells[0].source, lab.name
        assert any(c.cell_type == "markdown" and c.source.startswith(("## Quiz", "## Discussion")) for c in nb.cells)


def test_stub_keeps_signature_and_docstring_and_raises():
    src = 'import math\n\n\n@staticmethod\ndef f(x, y=2):\n    """Doc."""\n    z = x + y\n    return z\n\n# note\ndef g():\n    return 1\n'
    stub = course.stub_source(src)
    assert "z = x + y" not in stub and "return 1" not in stub and "import math" in stub and "# note" in stub
    assert '@staticmethod\ndef f(x, y=2):\n    """Doc."""' in stub
    namespace = {}
    exec(compile(stub.replace("@staticmethod\n", ""), "stub", "exec"), namespace)
    for name, args in (("f", (1,)), ("g", ())):
        with pytest.raises(NotImplementedError, match="TODO"):
            namespace[name](*args)


@pytest.mark.parametrize("src, message", [
    ("x = 1\ndef f():\n    return x\n", "only functions and imports"),
    ("import torch\n", "at least one function"),
    ("def f(): return 1\n", "its own lines"),
    ("def f(:\n", "does not parse"),
])
def test_stub_rejects_cells_it_cannot_stub(src, message):
    with pytest.raises(ValueError, match=message):
        course.stub_source(src, "lab cell 3")


def test_export_writes_five_student_notebooks_without_solution_code(tmp_path):
    paths = course.export(tmp_path / "student")
    assert [p.name for p in paths] == [f"{lab.name}.ipynb" for lab in LABS]
    for lab, path in zip(LABS, paths):
        instructor, student = nbformat.read(lab.path, as_version=4), nbformat.read(path, as_version=4)
        nbformat.validate(student)
        assert student.metadata["wdlg_course"] == {"version": "student", "lab": lab.name}
        text = "\n".join(c.source for c in student.cells)
        assert "{solution" not in text and "Answers (instructor)" not in text and "{exercise}" not in text
        assert text.count("### Exercise ") == len(_solution_functions(instructor))
        stubs = [c for c in student.cells if "solution" in _tags(c)]
        assert stubs and all("raise NotImplementedError(\"TODO" in c.source for c in stubs)
        for name, body in _solution_functions(instructor).items():
            assert f"def {name}(" in text, (lab.name, name)
            for statement in body:  # no line of the solution's body is left
                assert statement not in "\n".join(ast.unparse(n) for c in stubs for n in ast.parse(c.source).body), \
                    (lab.name, name, statement)
        # the checks are the instructor's, unchanged
        assert [c.source for c in student.cells if "check" in _tags(c)] == \
            [c.source for c in instructor.cells if "check" in _tags(c)]


def test_cli_course_export_and_its_errors(tmp_path, capsys):
    assert cli.main(["course", "list"]) == 0
    assert "lab4_rgap" in capsys.readouterr().out
    out = tmp_path / "s"
    assert cli.main(["course", "export", str(out), "--lab", "lab2_label_restoration"]) == 0
    assert [p.name for p in out.iterdir()] == ["lab2_label_restoration.ipynb"]
    assert cli.main(["course", "export", str(out), "--lab", "lab2_label_restoration"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert cli.main(["course", "export", str(out), "--lab", "lab2_label_restoration", "--force"]) == 0
    assert cli.main(["course", "export", str(out / "lab2_label_restoration.ipynb")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert cli.main(["course", "export", str(tmp_path / "t"), "--lab", "lab9"]) == 2
    err = capsys.readouterr().err
    assert "lab9" in err and "lab1_gradients_leak" in err and "Traceback" not in err
    assert not (tmp_path / "t").exists()


def _execute(path, out, monkeypatch):
    import papermill as pm

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("WDLG_TORCH_THREADS", "1")
    pm.execute_notebook(str(path), str(out), cwd=str(REPO), kernel_name="python3", progress_bar=False)


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS, ids=[lab.name for lab in LABS])
def test_student_notebook_fails_at_its_first_check(lab, tmp_path, monkeypatch):
    from papermill.exceptions import PapermillExecutionError

    [path] = course.export(tmp_path, [lab.name])
    with pytest.raises(PapermillExecutionError) as exc:
        _execute(path, tmp_path / "out.ipynb", monkeypatch)
    student = nbformat.read(path, as_version=4)
    first_check = next(i for i, c in enumerate(student.cells) if "check" in _tags(c))
    assert exc.value.ename == "NotImplementedError" and "TODO" in exc.value.evalue
    assert exc.value.cell_index == first_check, (exc.value.cell_index, first_check)
    # every cell before it ran without error
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert not any(o.output_type == "error" for c in executed.cells[:first_check] if c.cell_type == "code"
                   for o in c.outputs)


@pytest.mark.slow
def test_instructor_lab_passes_its_checks_end_to_end(tmp_path, monkeypatch):
    lab = next(lab for lab in LABS if lab.name == "lab4_rgap")  # the quickest lab (a few seconds)
    _execute(lab.path, tmp_path / "out.ipynb", monkeypatch)
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    checks = [c for c in nb.cells if "check" in _tags(c)]
    printed = ["".join(o.get("text", "") for o in c.outputs) for c in checks]
    assert checks and all(p.startswith("ok: ") and "check failed" not in p for p in printed)


def test_a_failing_check_names_what_and_gives_a_hint():
    from wdlg_core.labkit import CheckFailed, check, check_close

    check_close([1.0, 2.0], [1.0, 2.0 + 1e-9], "close", "none needed")
    with pytest.raises(CheckFailed, match=r"(?s)the loss.*largest difference 0\.5.*Hint: square it"):
        check_close(1.5, 1.0, "the loss", "square it")
    with pytest.raises(AssertionError, match="Hint: argmin"):
        check(False, "labels", "argmin")
    with pytest.raises(CheckFailed, match="got None"):
        check_close(None, 1.0, "value", "return it")


def test_runner_treats_labs_as_notebooks_without_results_or_parameters(tmp_path):
    from wdlg_core.runner import course_specs, load_manifest, parse_parameters, select

    specs = load_manifest() + course_specs()
    labs = [s for s in specs if not s.parameters]
    assert [s.name for s in labs] == [lab.name for lab in LABS] and all(s.results == "" for s in labs)
    # naming only labs does not rerun the replication summary; naming a page does
    assert [s.name for s in select(specs, ["lab1_gradients_leak"])] == ["lab1_gradients_leak"]
    assert "replication_summary" in [s.name for s in select(specs, ["tab01_settings", "lab1_gradients_leak"])]
    with pytest.raises(ValueError, match="name the page"):
        parse_parameters(["n_images=1"], select(specs, ["lab1_gradients_leak"]))


def test_book_copy_gets_a_download_link_and_the_cache_key(tmp_path):
    lab = LABS[0]
    copy = tmp_path / "labs" / f"{lab.name}.ipynb"
    copy.parent.mkdir()
    copy.write_text(lab.path.read_text())
    assert course.executed_key(copy) is None
    course.finish_book_copy(copy, lab, student_dir=tmp_path / "student")
    course.finish_book_copy(copy, lab, student_dir=tmp_path / "student")  # idempotent: one link
    nb = nbformat.read(copy, as_version=4)
    links = [c.source for c in nb.cells if "course-download" in _tags(c)]
    assert len(links) == 1 and f"{{download}}`{lab.name}.ipynb <../student/{lab.name}.ipynb>`" in links[0]
    assert nb.cells[1].source == links[0]  # right after the title
    assert course.executed_key(copy) == course.source_key(lab)


def test_course_part_of_the_book_lists_the_labs():
    toc = (REPO / "book" / "_toc.yml").read_text()
    for lab in LABS:
        assert f"file: course/labs/{lab.name}" in toc
    syllabus = (REPO / "book" / "course" / "syllabus.md").read_text()
    for lab in LABS:
        assert f"<student/{lab.name}.ipynb>" in syllabus and f"labs/{lab.name}.ipynb" in syllabus
    assert "sphinx_exercise" in (REPO / "book" / "_config.yml").read_text()
