"""The Dockerfile, read as data (there is no Docker engine here), and its install steps replayed without Docker.

The replay builds the wheel and installs it into a fresh virtual environment exactly as the image's build stage
does, which needs the package registry; it runs when FLORA_DOCKER_REPLAY=1 (as `.ci/run` sets it).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr

from flora_mcp.cli.main import build_parser
from flora_mcp.hosted import AuthPolicy, HostedOptions, HostedServer, bind
from flora_mcp.sandbox import Sandbox
from tests.packaging.packaging_support import Dist
from tests.support import settings_for

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each a list of (INSTRUCTION, arguments) with continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def exec_form(args: str) -> list[str]:
    import json

    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not exec form: {args}"
    return value


def env_pairs(args: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(args))


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def test_the_image_is_built_in_stages_on_a_slim_python_base(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    for stage in stages:
        assert re.fullmatch(r"python:3\.1[1-9]-slim(@sha256:[0-9a-f]{64})?", stage.image), stage.image
    build, runtime = stages[0], stages[-1]
    assert build.name and any("pip wheel" in run for run in build.all("RUN"))
    copies = runtime.all("COPY")
    assert copies and all(c.startswith(f"--from={build.name} ") for c in copies)  # nothing but the build output


def test_the_server_runs_as_an_unprivileged_user(stages: list[Stage]) -> None:
    runtime = stages[-1]
    user = runtime.last("USER")
    assert user is not None
    assert user.split(":")[0] not in ("root", "0")
    assert runtime.instructions.index(("USER", user)) > max(
        i for i, (kw, _) in enumerate(runtime.instructions) if kw in ("RUN", "COPY"))


def test_no_key_or_token_is_baked_into_the_image(stages: list[Stage]) -> None:
    text = DOCKERFILE.read_text()
    assert "sk_live_" not in text and "sk_test_" not in text
    for stage in stages:
        for keyword in ("ENV", "ARG", "LABEL"):
            for args in stage.all(keyword):
                names = env_pairs(args) if "=" in args else {args.split()[0]: ""}
                for name in names:
                    assert not SECRET_NAME.search(name), f"{keyword} {name} would bake a secret into the image"


def test_the_default_command_serves_http_on_every_interface(stages: list[Stage]) -> None:
    runtime = stages[-1]
    entrypoint = exec_form(runtime.last("ENTRYPOINT") or "[]")
    command = entrypoint + exec_form(runtime.last("CMD") or "[]")
    assert command[0] == "flora-mcp"
    args = build_parser().parse_args(command[1:])
    assert (args.transport, args.host) == ("http", "0.0.0.0")
    assert f"{args.port}" in " ".join(runtime.all("EXPOSE")).split()


def test_the_default_command_refuses_to_start_without_auth(stages: list[Stage]) -> None:
    runtime = stages[-1]
    command = exec_form(runtime.last("ENTRYPOINT") or "[]") + exec_form(runtime.last("CMD") or "[]")
    env = {**CLEAN_ENV, **env_pairs(" ".join(runtime.all("ENV")).replace("$PATH", os.environ["PATH"])),
           "FLORA_API_KEY": "sk_live_only0the0server0has0this"}
    env["FLORA_JOURNAL"] = ":memory:"
    done = subprocess.run([sys.executable, "-m", "flora_mcp", *command[1:]], env=env, capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "without auth" in done.stderr


@pytest.mark.anyio
async def test_the_healthcheck_passes_on_a_live_server_and_fails_without_one(stages: list[Stage],
                                                                           sandbox: Sandbox) -> None:
    health = stages[-1].last("HEALTHCHECK")
    assert health is not None and "CMD " in health
    options, _, command = health.partition("CMD ")
    assert re.search(r"--interval=\d+s", options) and re.search(r"--timeout=\d+s", options)
    probe = exec_form(command)
    assert probe[:2] == ["python", "-c"] and "/healthz" in probe[2] and "curl" not in health
    settings = settings_for(sandbox, mcp_tokens=SecretStr("tok_healthcheck_0123"))
    opts = HostedOptions(port=0)
    server = HostedServer(settings, opts, AuthPolicy.from_settings(settings, per_user_keys=False),
                          bind("127.0.0.1", 0))

    def run_probe(port: int) -> int:
        code = probe[2].replace(":8000/", f":{port}/")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20).returncode

    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        await server.started.wait()
        assert await anyio.to_thread.run_sync(run_probe, server.port) == 0
        await server.shutdown()
    assert await anyio.to_thread.run_sync(run_probe, server.port) != 0


def test_the_build_context_holds_only_what_the_build_copies() -> None:
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for stage in parse_dockerfile(DOCKERFILE.read_text())[1]:
        for args in stage.all("COPY"):
            if not args.startswith("--from="):
                copied.update(p.rstrip("/").removeprefix("./") for p in args.split()[:-1])
    assert copied == allowed
    assert all((ROOT / path).exists() for path in copied)


# The runtime stage against the wheel ---------------------------------------------------------------------------------


def installed_layout(stages: list[Stage], wheel: Path, root: Path) -> Path:
    """The wheel installed (no dependencies, offline) into a venv at the build stage's venv path under `root`."""
    (copy,) = stages[-1].all("COPY")
    venv = root / copy.split()[1].lstrip("/")
    assert any(f"python -m venv {copy.split()[1]}" in run for run in stages[0].all("RUN"))
    done = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                           "--quiet", "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return venv


def on_runtime_path(stage: Stage, command: str, root: Path) -> Path | None:
    """Where the runtime stage's PATH finds `command` among the files it copied in (None: not there)."""
    env = env_pairs(" ".join(stage.all("ENV")).replace("$PATH", "/usr/local/bin:/usr/bin:/bin"))
    for folder in env["PATH"].split(":"):
        candidate = root / folder.lstrip("/") / command
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def defines(module: Path, name: str) -> bool:
    import ast

    tree = ast.parse(module.read_text())
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
               or isinstance(node, ast.ImportFrom) and any(alias.name == name for alias in node.names)
               for node in tree.body)


@pytest.mark.packaging
def test_the_runtime_stage_finds_its_entrypoint_and_healthcheck_in_the_wheels_install_layout(
        stages: list[Stage], dist: Dist, tmp_path: Path) -> None:
    """What the image runs exists where the wheel installs it: a renamed script or module fails here, not in prod."""
    build, runtime = stages[0], stages[-1]
    installs = [arg for run in build.all("RUN") for arg in shlex.split(run) if arg.endswith(".whl")]
    assert installs and all(fnmatch.fnmatch(dist.wheel.name, Path(arg).name) for arg in installs)
    venv = installed_layout(stages, dist.wheel, tmp_path)
    for copy in runtime.all("COPY"):
        _, source, dest = copy.split()
        assert (tmp_path / source.lstrip("/")).is_dir(), f"COPY {source}: the build stage has no such folder"
        assert source == dest  # a venv's scripts name its interpreter by absolute path: it cannot move
    command = exec_form(runtime.last("ENTRYPOINT") or "[]")[0]
    script = on_runtime_path(runtime, command, tmp_path)
    assert script is not None and script.is_relative_to(venv), f"ENTRYPOINT {command} is not on the runtime PATH"
    shebang = script.read_text().splitlines()[0].removeprefix("#!")
    assert Path(shebang) == venv / "bin" / "python"
    imported = re.search(r"^from ([\w.]+) import (\w+)$", script.read_text(), re.MULTILINE)
    assert imported, script.read_text()
    module, function = imported.groups()
    (site,) = venv.glob("lib/python3.*/site-packages")
    package = site.joinpath(*module.split("."))
    source = package / "__init__.py" if package.is_dir() else package.with_suffix(".py")
    assert source.is_file() and defines(source, function), f"{module}:{function} is not in the installed wheel"
    probe = exec_form((runtime.last("HEALTHCHECK") or "").partition("CMD ")[2])
    found = on_runtime_path(runtime, probe[0], tmp_path)
    assert found is not None and found.parent == venv / "bin"  # the venv's Python, the one with flora-mcp


# The replay ---------------------------------------------------------------------------------------------------------


def replay_build_stage(stage: Stage, root: Path) -> None:
    """Run a build stage's COPY, WORKDIR, ENV and RUN steps with every absolute path moved under `root`."""
    tops = {m.group(1) for _, args in stage.instructions for m in re.finditer(r"(?:^|[\s=])/([\w.-]+)", args)}
    moved = re.compile(r"(?<![\w./-])/(" + "|".join(map(re.escape, sorted(tops))) + r")(?=[/\s]|$)")

    def relocate(text: str) -> str:
        return moved.sub(lambda m: f"{root}/{m.group(1)}", text)

    python_dir = root / "shim"
    python_dir.mkdir()
    (python_dir / "python").symlink_to(sys.executable)
    env = {**CLEAN_ENV, "PATH": f"{python_dir}{os.pathsep}{os.environ['PATH']}"}
    workdir = root
    for keyword, args in stage.instructions:
        if keyword == "WORKDIR":
            workdir = Path(relocate(args))
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            env.update(env_pairs(args))
            # The image skips pip's cache to stay small; the replay may use it, to be quick on a CI machine.
            env.pop("PIP_NO_CACHE_DIR", None)
        elif keyword == "COPY":
            *sources, dest = args.split()
            target = Path(relocate(dest)) if dest.startswith("/") else workdir / dest
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(origin, target / origin.name if dest.endswith("/") and len(sources) > 1
                                    else target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif keyword == "RUN":
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", relocate(args)], cwd=workdir, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"RUN {args}\n{done.stdout}\n{done.stderr}"
        else:
            raise AssertionError(f"the replay does not know {keyword}")


@pytest.mark.skipif(os.environ.get("FLORA_DOCKER_REPLAY") != "1",
                    reason="replays pip against the registry; set FLORA_DOCKER_REPLAY=1 (.ci/run does)")
def test_the_build_stage_installs_a_working_flora_mcp_without_docker(stages: list[Stage], tmp_path: Path) -> None:
    build, runtime = stages[0], stages[-1]
    replay_build_stage(build, tmp_path)
    source = runtime.all("COPY")[0].split()[1]
    venv = Path(f"{tmp_path}{source}")
    command = exec_form(runtime.last("ENTRYPOINT") or "[]") + exec_form(runtime.last("CMD") or "[]")
    env = {**CLEAN_ENV, "FLORA_API_KEY": "sk_live_only0the0server0has0this", "FLORA_JOURNAL": ":memory:"}
    done = subprocess.run([str(venv / "bin" / command[0]), *command[1:]], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "without auth" in done.stderr
    imported = subprocess.run([str(venv / "bin" / "python"), "-c",
                               "import flora_mcp.hosted, flora_mcp.sandbox, importlib.resources as r; "
                               "assert r.files('flora_mcp').joinpath('py.typed').is_file()"],
                              capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
