"""The `smolora` CLI for projects: init, projects, show, config (validated), --json."""

import json

from smolora_engine import paths
from smolora_engine.cli import main
from smolora_engine.projects import load_project


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_projects_show(capsys, tmp_path):
    assert run(capsys, "init", "demo1", "--data", str(tmp_path))[0] == 0
    code, out, _ = run(capsys, "projects", "--json")
    data = json.loads(out)
    assert data[0]["name"] == "demo1" and data[0]["usable"] and data[0]["data"] == str(tmp_path)
    code, out, _ = run(capsys, "show", "demo1", "--json")
    assert json.loads(out)["project"]["lora"]["r"] == 16
    code, _, err = run(capsys, "init", "demo1")
    assert code == 2 and "already exists" in err


def test_config_validates_before_saving(capsys):
    run(capsys, "init", "p")
    before = paths.project_file("p").read_text()
    code, out, err = run(capsys, "config", "p", "lora.r=32", "lora.r=0")
    assert code == 2
    assert "lora.r must be a positive integer, got 0" in err and "nothing was saved" in err
    assert paths.project_file("p").read_text() == before
    code, _, err = run(capsys, "config", "p", "training.lr=1")
    assert code == 2 and "unknown key training.lr" in err and "training.learning_rate" in err
    code, out, _ = run(capsys, "config", "p", "lora.r=32", "training.learning_rate=1e-4", "lora.use_dora=true")
    assert code == 0
    project = load_project("p")
    assert (project.lora.r, project.training.learning_rate, project.lora.use_dora) == (32, 1e-4, True)


def test_unknown_project_and_corrupt_project_messages(capsys):
    code, _, err = run(capsys, "show", "nope")
    assert code == 2 and "no project named 'nope'" in err and "smolora init nope" in err
    paths.projects_dir().mkdir(parents=True)
    paths.project_file("bad").write_text("[lora\n")
    code, out, _ = run(capsys, "projects")
    assert "UNREADABLE" in out and "line 1" in out


def test_every_command_has_help(capsys):
    from smolora_engine.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, sub_parser in sub.choices.items():
        assert sub_parser.format_help(), name


def test_demo_setup(capsys):
    code, out, _ = run(capsys, "demo", "--setup")
    assert code == 0
    project = load_project("demo")
    assert project.data.path.endswith("signature_chat.jsonl")


def test_demo_walks_every_step_headless(embedded_model):
    """`smolora demo` on the real embedded model: check, train (2 steps), merge, score base vs tuned."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "smolora_engine.cli", "demo", "--max-steps", "2", "--prompts", "2"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for step in range(1, 6):
        assert f"[{step}/5]" in out
    assert "253 rows read" in out and "step 2/2" in out and "(max |logit difference|" in out and ": ok)" in out
    assert "base model:" in out and "tuned model:" in out and "% of answers show it" in out
    assert "Loading weights" not in result.stderr  # the walk prints its own progress only


def test_config_takes_decimal_numbers_and_questions_far_out_values(capsys):
    run(capsys, "init", "p")
    code, _, err = run(capsys, "config", "p", "training.learning_rate=0xabc")
    assert code == 2 and "training.learning_rate must be a number, got '0xabc'" in err
    code, out, err = run(capsys, "config", "p", "training.learning_rate=5", "lora.r=100000")
    assert code == 0 and "saved" in out  # valid, so saved; but questioned
    assert "warning: training.learning_rate = 5.0 is far above the usual range" in err and "diverge" in err
    assert "warning: lora.r = 100000 is far above the usual range" in err
    assert (load_project("p").training.learning_rate, load_project("p").lora.r) == (5.0, 100000)
    code, _, err = run(capsys, "config", "p", "training.learning_rate=2e-4", "lora.r=16")
    assert code == 0 and "warning" not in err


def test_config_takes_template_options_and_checks_column_names(capsys):
    run(capsys, "init", "p")
    code, _, err = run(capsys, "config", "p", "data.template_options={enable_thinking = false}")
    assert code == 0, err
    assert load_project("p").data.template_options == {"enable_thinking": False}
    code, _, err = run(capsys, "config", "p", "data.columns={prompt = true}")
    assert code == 2 and "data.columns must be a table of column names" in err


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """`smolora data preview BIG | head -1`: the pipe closes early; no traceback, the usual exit status."""
    import subprocess
    import sys

    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps({"text": f"row {i} " + "x" * 80}) + "\n" for i in range(20000)))
    reader = subprocess.Popen([sys.executable, "-m", "smolora_engine.cli", "data", "preview", str(big),
                               "--rows", "20000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = reader.stdout.readline()
    reader.stdout.close()  # as `head -1` does after its line
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=120) == 141
    assert b"rows 20000" in first and "Traceback" not in err and "BrokenPipe" not in err


def test_estimate_says_the_checkpointing_a_run_started_now_would_use(capsys, tiny_model_dir):
    from smolora_engine.demo import demo_train_file
    from smolora_engine.projects import create_project, save_project

    project = create_project("estimated", model=str(tiny_model_dir), data=str(demo_train_file()))
    assert main(["estimate", "estimated"]) == 0
    total, recipe = capsys.readouterr().out.strip().splitlines()
    assert total.startswith("≈ ") and "logits" in total
    # auto, against this machine's free memory: the tiny model fits, so off, with the figures that decided it
    assert recipe.startswith(f"for samples of max_length ({project.training.max_length} tokens)")
    assert "gradient checkpointing off (auto: the step needs about" in recipe and "GiB is free)" in recipe

    project.training.gradient_checkpointing = "on"
    save_project(project)
    assert main(["estimate", "estimated", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["checkpointing"] == "on" and shown["checkpointing_reason"] == "training.gradient_checkpointing = on"
    assert shown["total"] == sum(shown["parts"].values()) and shown["data"] is None


def test_estimate_for_the_projects_data_reads_its_longest_sample(capsys, tiny_model_dir):
    from smolora_engine.data import check_data
    from smolora_engine.demo import demo_train_file
    from smolora_engine.models import load_tokenizer
    from smolora_engine.projects import create_project

    project = create_project("estimated-data", model=str(tiny_model_dir), data=str(demo_train_file()))
    assert main(["estimate", "estimated-data", "--data", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    longest = check_data(project.data, load_tokenizer(str(tiny_model_dir)), project.training.max_length).tokens["max"]
    assert shown["data"]["longest"] == longest < shown["max_length"]
    assert shown["data"]["total"] < shown["total"]  # the demo's samples are far shorter than max_length
    assert main(["estimate", "estimated-data", "--data"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("for samples of max_length") and lines[2] == ""
    assert lines[4].startswith(f"for this data (its longest sample: {longest} tokens), ")
