"""The deployment files (Dockerfile, compose, Helm chart) agree with the code they start.

No container engine or Helm here: the files are parsed, and their commands, queues and
environment variables are checked against the manage.py commands, ``workers/queues.py`` and
the names ``studio/settings.py`` reads.
"""

from __future__ import annotations

import os
import re
import shlex

import pytest
import yaml
from django.core.management import get_commands, load_command_class

from studio import launch
from workers import queues
from workers.management.commands.worker import queue_error

ROOT = launch.BASE_DIR
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "studio"
SETTINGS = ROOT / "studio" / "settings.py"

# Without these a process falls back to per-machine defaults (embedded servers, a key file).
REQUIRED = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"}


def settings_env_names() -> set[str]:
    """Every environment variable name that studio/settings.py reads."""
    source = SETTINGS.read_text()
    pattern = r"""(?:environ\.get|environ\[|env_bool|env_list)\(?\s*["']([A-Z][A-Z0-9_]*)["']"""
    return set(re.findall(pattern, source))


def required_env() -> set[str]:
    # Uploaded files in a bucket, not on one machine's disk, once the settings can do it.
    return REQUIRED | ({"STUDIO_S3_BUCKET"} & settings_env_names())


def entrypoint_processes() -> dict[str, list[str]]:
    """deploy/entrypoint.sh's case arms: process name → the command it execs, as words."""
    source = (DEPLOY / "entrypoint.sh").read_text()
    arms = re.findall(r"^\s+(\w+)\)\n(.*?);;", source, flags=re.M | re.S)
    processes = {}
    for name, body in arms:
        lines = body.replace("\\\n", " ").splitlines()
        execs = [line for line in lines if line.strip().startswith("exec ")]
        assert len(execs) == 1, f"arm {name!r} must exec one command"
        processes[name] = shlex.split(execs[0])[1:]
    return processes


def check_process(args: list[str]) -> None:
    """``args`` as compose or Helm pass them to the entrypoint: a known process whose options
    the real command's parser accepts, and queues that tasks are sent to."""
    processes = entrypoint_processes()
    assert args[0] in processes, f"{args[0]!r} is not one of {sorted(processes)}"
    command = processes[args[0]]
    if command[:2] == ["python", "manage.py"] and command[2] != "$@":
        name = command[2]
        options = load_command_class(get_commands()[name], name).create_parser("manage.py", name)
        parsed = options.parse_args(args[1:])
        if name == "worker":
            for queue in parsed.queues.split(","):
                assert queue_error(queue) is None, queue_error(queue)
    else:
        assert args[1:] == [], f"{args[0]} takes no arguments here"


# --- the image ------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = None
    for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        if match := re.match(r"FROM\s+\S+\s+AS\s+(\w+)", line, flags=re.I):
            current = match.group(1)
            stages[current] = []
        elif current and line.strip() and not line.lstrip().startswith("#"):
            stages[current].append(line.strip())
    return stages


def test_image_is_multi_stage_and_runs_as_a_user_without_compilers():
    stages = dockerfile_stages()
    assert list(stages) == ["builder", "runtime"]
    runtime = stages["runtime"]
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] == "10001"
    assert any("--uid 10001" in line for line in runtime)
    assert any(line.startswith("COPY --from=builder /opt/venv") for line in runtime)
    installs = " ".join(line for line in runtime if "apt-get install" in line)
    for compiler in ("build-essential", "gcc", "g++", "make"):
        assert compiler not in installs.split()
    assert "build-essential" in " ".join(stages["builder"])
    entry = [line for line in runtime if line.startswith("ENTRYPOINT")]
    assert entry == ['ENTRYPOINT ["/app/deploy/entrypoint.sh"]']
    assert os.access(DEPLOY / "entrypoint.sh", os.X_OK)


def test_image_installs_what_the_makefile_installs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    model_packages = re.search(r"^MODEL_PACKAGES := (.+)$", makefile, flags=re.M).group(1)
    assert f'ARG MODEL_PACKAGES="{model_packages}"' in dockerfile
    # The GPU variant's build arguments name an extra and constraints that exist.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"^gpu = \[", pyproject, flags=re.M)
    assert "EXTRAS=gpu" in dockerfile and "CONSTRAINTS=constraints-gpu.txt" in dockerfile
    assert (ROOT / "constraints-gpu.txt").exists()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", ".env"} <= set(ignored)


def test_entrypoint_runs_what_the_studio_runs():
    processes = entrypoint_processes()
    assert set(processes) >= {"web", "worker", "beat", "migrate", "manage"}
    for name in ("worker", "beat", "migrate"):
        assert processes[name][:3] == ["python", "manage.py", name], processes[name]
        assert name in get_commands()
    # The web server as make up and the tests start it: daphne on the ASGI application.
    web = launch.web_command(8000)
    assert processes["web"][:3] == ["python", *web[1:3]]
    assert processes["web"][-1] == web[-1] == "studio.asgi:application"


# --- compose ----------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def studio_services() -> dict[str, dict]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if str(service.get("image", "")).startswith("${STUDIO")
    }


def served_queues(commands: list[list[str]]) -> set[str]:
    served = set()
    for args in commands:
        if args[0] == "worker":
            served |= set(args[args.index("--queues") + 1].split(","))
    return served


def test_compose_commands_are_studio_processes_and_serve_every_queue():
    services = studio_services()
    commands = {name: service["command"] for name, service in services.items()}
    for args in commands.values():
        check_process(args)
    assert set(queues.default_queues()) <= served_queues(list(commands.values()))
    assert [name for name, args in commands.items() if args[0] == "beat"] == ["beat"]
    assert [name for name, args in commands.items() if args[0] == "migrate"] == ["migrate"]
    for name, service in services.items():
        if name != "migrate":
            assert service["depends_on"]["migrate"] == {
                "condition": "service_completed_successfully"
            }


def test_compose_environment_is_what_the_settings_read():
    names = settings_env_names()
    for name, service in studio_services().items():
        env = set(service["environment"])
        assert env <= names, f"{name} sets {env - names}, which studio/settings.py never reads"
        assert required_env() <= env, f"{name} lacks {required_env() - env}"


def test_env_example_and_compose_name_the_same_variables():
    text = (DEPLOY / "compose.yaml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert example == referenced


def test_compose_backing_services_have_healthchecks():
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    for name in ("postgres", "redis", "minio", "web"):
        assert services[name]["healthcheck"]["test"], name


# --- Helm -------------------------------------------------------------------------------------


def values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def templates() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted((CHART / "templates").glob("*.yaml"))}


def skeleton(template: str) -> list:
    """The template as YAML with its actions blanked: lines that hold only an action dropped,
    inline actions replaced by a word. Catches indentation and syntax slips."""
    lines = [line for line in template.splitlines() if not re.fullmatch(r"\s*\{\{.*\}\}\s*", line)]
    text = re.sub(r"\{\{.*?\}\}", "X", "\n".join(lines))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def lookup(tree: object, path: str) -> object:
    for part in path.split("."):
        assert isinstance(tree, dict) and part in tree, f"no {path!r} in values.yaml"
        tree = tree[part]
    return tree


def test_chart_templates_parse_and_name_only_values_that_exist():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "studio"
    tree = values()
    for name, text in templates().items():
        assert skeleton(text), name
        for path in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text):
            lookup(tree, path)
        # Fields of the items a range walks: every item must have them.
        for var, collection in re.findall(r"range \$(\w+) := \.Values\.(\w+)", text):
            for field in set(re.findall(rf"\${var}\.([A-Za-z0-9_.]+)", text)):
                for item in tree[collection]:
                    lookup(item, field)


def test_chart_workers_are_studio_processes_and_serve_every_queue():
    tree = values()
    commands = [
        ["worker", "--queues", w["queues"], "--concurrency", str(w["concurrency"])]
        for w in tree["workers"]
    ]
    commands += [
        ["worker", "--queues", g["queue"], "--concurrency", str(g["concurrency"])]
        for g in tree["gpuWorkers"]
    ]
    for args in commands:
        check_process(args)
    assert set(queues.default_queues()) <= served_queues(commands)
    assert all(g["queue"].startswith("gpu.") for g in tree["gpuWorkers"])
    all_queues = [q for args in commands for q in args[2].split(",")]
    assert len(all_queues) == len(set(all_queues)), "a queue served by two worker entries"
    text = templates()
    assert '"--queues", "{{ $worker.queues }}"' in text["workers.yaml"]
    assert '"--queues", "{{ $gpu.queue }}"' in text["gpu-workers.yaml"]
    assert "listName: {{ $gpu.queue | quote }}" in text["gpu-workers.yaml"]
    # Every args line a template passes names a process; beat's options parse.
    for args_line in re.findall(r"args: (\[.*\])", "\n".join(text.values())):
        assert yaml.safe_load(re.sub(r"\{\{.*?\}\}", "1", args_line))[0] in entrypoint_processes()
    check_process(["beat", "--lock-ttl", str(tree["beat"]["lockTtl"])])


def test_chart_environment_is_what_the_settings_read():
    tree = values()
    names = settings_env_names()
    configmap = skeleton(templates()["env.yaml"])[0]["data"]
    env = set(tree["env"]) | set(tree["secretEnv"]) | {k for k in configmap if k != "X"}
    assert env <= names, f"the chart sets {env - names}, which studio/settings.py never reads"
    assert required_env() <= env, f"the chart lacks {required_env() - env}"
    secret = templates()["env.yaml"]
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        assert f'required "secretEnv.{name}"' in secret


def test_chart_runs_beat_once_and_migrates_before_install_and_upgrade():
    beat = skeleton(templates()["beat.yaml"])[0]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    job = skeleton(templates()["migrate-job.yaml"])[0]
    assert job["kind"] == "Job"
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    env_docs = skeleton(templates()["env.yaml"])
    # The job's ConfigMap and Secret exist before it: hooks of a lower weight.
    for doc in env_docs:
        weight = int(doc["metadata"]["annotations"]["helm.sh/hook-weight"])
        assert weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])


@pytest.mark.parametrize("name", ["web.yaml", "workers.yaml", "beat.yaml", "gpu-workers.yaml"])
def test_chart_pods_run_as_the_image_user_on_a_read_only_root(name):
    text = templates()[name]
    assert 'include "studio.podSecurity"' in text
    assert 'include "studio.containerSecurity"' in text
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "runAsUser: 10001" in helpers and "readOnlyRootFilesystem: true" in helpers
