"""docker-compose.yml, the Dockerfile and the container config, tested without a Docker engine.

- docker-compose.yml validates against the Compose Specification's JSON schema;
- every host path it references (build contexts, bind mounts, config/secret/env files) exists here;
- the services, the Prometheus config and the Grafana provisioning agree with each other;
- prometheus/prometheus.yml passes `promtool check config`;
- the Dockerfile keeps its promises (base, non-root, port, healthcheck, entrypoint) and copies only
  files the build context (.dockerignore) lets through;
- the config the image ships loads with the exporter's own loader.

The schema is read from the first of SCHEMA_CANDIDATES that exists (Debian's `docker-compose`
package ships the Compose Specification schema). Missing tools or schema skip these tests, except
under CI (CI=true), where they fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import promtool, unavailable

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
GRAFANA_PROVIDER = REPO / "grafana" / "provisioning" / "dashboards" / "twitchminert.yml"
GRAFANA_DATASOURCES = REPO / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
CONTAINER_CONFIG = REPO / "examples" / "docker" / "twitchminert.yaml"
SCHEMA_CANDIDATES = (
    REPO / "tests" / "data" / "compose-spec.json",  # a vendored copy, if the project keeps one
    Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json"),  # Debian: docker-compose
)


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def host_port(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host, int(port)


def service_names_and_aliases() -> set[str]:
    names = set()
    for name, service in services().items():
        names.add(name)
        networks = service.get("networks") or {}
        if isinstance(networks, dict):
            for network in networks.values():
                names.update((network or {}).get("aliases", []))
    return names


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host source, container target) of a service's bind mounts, short and long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
            if source.startswith((".", "/", "~")):
                mounts.append((source, target))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"]))
    return mounts


# -- the Compose file -----------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification():
    try:
        import jsonschema
    except ImportError:
        unavailable("jsonschema is not installed (pip install jsonschema)")
    schema_path = next((path for path in SCHEMA_CANDIDATES if path.exists()), None)
    if schema_path is None:
        unavailable("no Compose Specification schema (Debian: apt-get install docker-compose)")
    schema = json.loads(schema_path.read_text())
    declared = schema.get("$schema", "")
    validator_class = (
        jsonschema.Draft201909Validator
        if "2019-09" in declared
        else jsonschema.Draft7Validator
        if "draft-07" in declared
        else jsonschema.validators.validator_for(schema)
    )
    validator = validator_class(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, "\n".join(errors)
    # and the schema is strict enough to notice a mistake
    broken = compose()
    broken["services"]["prometheus"]["imagee"] = "typo"
    assert not validator.is_valid(broken)


def test_every_referenced_host_path_exists():
    document = compose()
    for name, service in document["services"].items():
        build = service.get("build")
        if build is not None:
            context = REPO / (build if isinstance(build, str) else build.get("context", "."))
            assert context.is_dir(), f"{name}: build context {context}"
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (context / dockerfile).is_file(), f"{name}: {dockerfile}"
        for source, _target in bind_mounts(service):
            assert not source.startswith(("/", "~")), f"{name}: {source}: use a path inside the repository"
            assert (REPO / source).exists(), f"{name}: volume source {source} does not exist"
        env_files = service.get("env_file", [])
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            assert (REPO / path).exists(), f"{name}: env_file {path}"
    for section in ("configs", "secrets"):
        for name, item in (document.get(section) or {}).items():
            if "file" in item:
                assert (REPO / item["file"]).exists(), f"{section}.{name}: {item['file']}"


def test_profiles_demo_and_tdm_share_the_scrape_alias():
    found = services()
    assert found["demo"]["profiles"] == ["demo"]
    assert found["exporter"]["profiles"] == ["tdm"]
    assert found["demo"]["command"][0] == "demo"
    assert "0.0.0.0:9797" in found["demo"]["command"]
    for name in ("demo", "exporter"):
        assert found[name]["build"] == "."
        assert "twitchminert" in found[name]["networks"]["default"]["aliases"]
        # both publish the same host port: running both profiles at once fails loudly instead of
        # letting two exporters answer to one scrape target
        assert found[name]["ports"] == ["127.0.0.1:9797:9797"]
    # the monitoring services run in every profile
    for name in ("prometheus", "alertmanager", "grafana"):
        assert "profiles" not in found[name]


def test_ports_are_published_on_loopback_only():
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


# -- the services agree with each other ---------------------------------------------------------------


def test_prometheus_targets_are_compose_services():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    known = service_names_and_aliases()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for static in jobs["twitchminert"]["static_configs"] for t in static["targets"]]
    assert targets and all(host_port(t)[0] in known for t in targets), targets
    assert all(host_port(t)[1] == 9797 for t in targets)
    alertmanagers = [
        t for am in config["alerting"]["alertmanagers"] for static in am["static_configs"] for t in static["targets"]
    ]
    assert [host_port(t)[0] for t in alertmanagers] == ["alertmanager"]


def test_mounts_match_the_configs_that_use_them():
    found = services()
    prometheus_mounts = dict(bind_mounts(found["prometheus"]))
    config_flag = next(arg for arg in found["prometheus"]["command"] if arg.startswith("--config.file="))
    assert config_flag == f"--config.file={prometheus_mounts['./prometheus']}/prometheus.yml"

    alertmanager_mounts = dict(bind_mounts(found["alertmanager"]))
    config_flag = next(arg for arg in found["alertmanager"]["command"] if arg.startswith("--config.file="))
    assert config_flag == f"--config.file={alertmanager_mounts['./prometheus/alertmanager.yml']}"

    grafana_mounts = dict(bind_mounts(found["grafana"]))
    assert grafana_mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(GRAFANA_PROVIDER.read_text())["providers"][0]
    assert grafana_mounts["./grafana/dashboards"] == provider["options"]["path"]
    home = found["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (REPO / "grafana" / "dashboards" / Path(home).name).is_file()

    datasource = yaml.safe_load(GRAFANA_DATASOURCES.read_text())["datasources"][0]
    host = re.match(r"https?://([^:/]+)", datasource["url"]).group(1)
    assert host in found


def test_prometheus_config_passes_promtool():
    result = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_config_passes_amtool():
    amtool = shutil.which("amtool")
    if amtool is None:
        unavailable("amtool not found (Debian: apt-get install prometheus-alertmanager)")
    result = subprocess.run(
        [amtool, "check-config", str(REPO / "prometheus" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the image ----------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_keeps_its_promises():
    instructions = dockerfile_instructions()
    values = {}
    for keyword, rest in instructions:
        values.setdefault(keyword, []).append(rest)
    assert values["FROM"] == ["python:3.12-slim-bookworm"]
    apt = " ".join(run for run in values["RUN"] if "apt-get install" in run)
    assert "--no-install-recommends" in apt and "xvfb" in apt and "python3-tk" in apt
    assert values["USER"][-1] not in ("root", "0")
    assert values["EXPOSE"] == ["9797"]
    assert "/-/healthy" in values["HEALTHCHECK"][0] and "urllib" in values["HEALTHCHECK"][0]
    assert json.loads(values["ENTRYPOINT"][0]) == ["twitchminert"]
    assert json.loads(values["CMD"][0]) == [
        "run", "--config.file", "/config/twitchminert.yaml", "--web.listen-address", "0.0.0.0:9797"
    ]


def test_dockerfile_copies_only_what_the_build_context_lets_through():
    allowed = [
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    ]
    assert "*" in DOCKERIGNORE.read_text().splitlines(), ".dockerignore should start from an empty context"
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _destination = rest.split()
        for source in sources:
            source = source.rstrip("/")
            assert (REPO / source).exists(), f"COPY {source}: no such file"
            assert any(source == a or source.startswith(a + "/") for a in allowed), f"COPY {source}: .dockerignore drops it"


def test_container_config_loads():
    from exporter.config import load_config

    config = load_config(CONTAINER_CONFIG)
    assert str(config.miner.dir) == "/tdm"
    assert str(config.storage.path) == "/data"
