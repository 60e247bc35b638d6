"""Checks that the Helm chart's rendered manifests agree with the binary and
the Dockerfile: the command and subcommands, every environment variable and
config file key, the container ports and what listens on them, the probes'
paths and ports, the mounted files the binary is pointed at, and the
selectors between the resources. Called by .ci/chart.

usage: chart_check.py BINARY DOCKERFILE RENDERED.yaml...

Exits 1 with one line per mismatch. Nothing here runs a cluster.
"""

import os
import re
import subprocess
import sys
import tempfile
import tomllib

import yaml


def help_text(binary, *args):
    return subprocess.run(
        [binary, *args, "--help"], check=True, capture_output=True, text=True
    ).stdout


def options(text):
    """The flags and environment variables a `--help` lists."""
    flags = set(re.findall(r"^\s+--([a-z][a-z0-9-]*)", text, re.M))
    env = set(re.findall(r"\[env: ([A-Z0-9_]+)", text))
    return flags, env


def subcommands(text):
    block = text.split("Commands:", 1)[1].split("\n\n", 1)[0]
    return {line.split()[0] for line in block.strip().splitlines()} - {"help"}


def dockerfile_facts(path):
    text = open(path).read()
    final = text.split("\nFROM ")[-1]
    binary = re.search(r"^COPY --from=\S+ \S+ (/\S+/accord)$", final, re.M).group(1)
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", final, re.M).group(1).split()}
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", final, re.M).group(1)
    user = re.search(r"^USER (\d+)", final, re.M).group(1)
    return binary, exposed, yaml.safe_load(entry), int(user)


def loads_config(binary, text):
    """Whether the binary accepts the config file `text`: `accord migrate`
    with it, on a scratch SQLite database (the file's own database may be a
    path only the pod has). Returns the error it printed, or None."""
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "accord.toml")
        with open(path, "w") as f:
            f.write(text)
        run = subprocess.run(
            [binary, "migrate", "--config", path],
            env={
                "PATH": os.environ.get("PATH", ""),
                "ACCORD_DATABASE_URL": f"sqlite:{scratch}/accord.db",
            },
            capture_output=True,
            text=True,
        )
        return None if run.returncode == 0 else run.stderr.strip()[-500:]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def main():
    binary, dockerfile, *rendered = sys.argv[1:]
    errors = []

    top = help_text(binary)
    commands = subcommands(top)
    serve_flags, serve_env = options(help_text(binary, "serve"))
    _, migrate_env = options(help_text(binary, "migrate"))
    serve_help = help_text(binary, "serve")
    admin_help = serve_help.split("--admin-listen", 1)[1].split("\n      --", 1)[0]
    served_paths = set(re.findall(r"/(?:livez|readyz|metrics)", admin_help))
    image_binary, exposed, entrypoint, image_user = dockerfile_facts(dockerfile)
    if entrypoint[0] != image_binary or entrypoint[1] not in commands:
        errors.append(f"Dockerfile: ENTRYPOINT {entrypoint} is not {image_binary} <subcommand>")
    if {"/livez", "/readyz", "/metrics"} - served_paths:
        errors.append(f"accord serve --help: --admin-listen names only {served_paths}")

    for path in rendered:
        docs = [d for d in yaml.safe_load_all(open(path)) if d]
        where = path.rsplit("/", 1)[-1]
        by_kind = {}
        for d in docs:
            by_kind.setdefault(d["kind"], []).append(d)

        def fail(message):
            errors.append(f"{where}: {message}")

        config_maps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
        (deployment,) = by_kind["Deployment"]
        pod = deployment["spec"]["template"]
        pod_labels = pod["metadata"]["labels"]
        spec = pod["spec"]
        (container,) = spec["containers"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}

        def check_process(kind, c, allowed_env, subcommand):
            if c.get("command") != [image_binary]:
                fail(f"{kind}: command {c.get('command')} is not the image's {image_binary}")
            if c.get("args") != [subcommand] or subcommand not in commands:
                fail(f"{kind}: args {c.get('args')}: `accord {subcommand}` expected")
            for e in c.get("env", []):
                if e["name"] not in allowed_env:
                    fail(f"{kind}: `accord {subcommand} --help` reads no {e['name']}")
            sc = c.get("securityContext", {})
            if not (
                sc.get("readOnlyRootFilesystem")
                and sc.get("allowPrivilegeEscalation") is False
                and sc.get("capabilities", {}).get("drop") == ["ALL"]
            ):
                fail(f"{kind}: container not read-only, or keeps privileges")

        def check_pod_security(kind, pod_spec):
            psc = pod_spec.get("securityContext", {})
            if not psc.get("runAsNonRoot") or psc.get("runAsUser") != image_user:
                fail(f"{kind}: the pod must run as the image's non-root user {image_user}")

        # The OpenTelemetry SDK's own variables, which the server honours
        # without a flag (docs/operations.md, Traces and logs).
        otel_env = {
            "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        }
        check_process("Deployment", container, serve_env | otel_env, "serve")
        check_pod_security("Deployment", spec)
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}

        def mounted_file(file_path):
            """The volume and the key behind a file path in the container."""
            directory, name = file_path.rsplit("/", 1)
            volume = volumes.get(mounts.get(directory))
            if volume is None:
                return None, None
            for source in ("configMap", "secret"):
                if source in volume:
                    items = volume[source].get("items")
                    if items is None:
                        return volume, name
                    for item in items:
                        if item["path"] == name:
                            return volume, item["key"]
            return volume, None

        # Ports: what the server listens on is what the pod declares.
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for name, variable in (("grpc", "ACCORD_LISTEN"), ("metrics", "ACCORD_ADMIN_LISTEN")):
            address = env.get(variable) or ""
            if not address.startswith("0.0.0.0:"):
                fail(f"{variable}={address!r}: a pod must listen on 0.0.0.0")
            elif ports.get(name) != int(address.rsplit(":", 1)[1]):
                fail(f"container port {name}={ports.get(name)} but {variable}={address}")
            if ports.get(name) not in exposed:
                fail(f"container port {name}={ports.get(name)} is not EXPOSEd by the Dockerfile")

        # Probes: on the admin port, at paths it serves.
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            p = container.get(probe)
            if p is None:
                fail(f"no {probe}")
                continue
            get = p.get("httpGet")
            grpc = p.get("grpc")
            if get:
                if get["port"] not in ("metrics", ports.get("metrics")):
                    fail(f"{probe} on port {get['port']}, not the admin port")
                if get["path"] not in served_paths:
                    fail(f"{probe} path {get['path']} is not served ({served_paths})")
            elif grpc:
                if grpc["port"] != ports.get("grpc"):
                    fail(f"{probe}: gRPC health on {grpc['port']}, not the gRPC port")
            else:
                fail(f"{probe} is neither httpGet on the admin port nor grpc")
        if container["readinessProbe"].get("httpGet", {}).get("path") != "/readyz":
            fail("the readiness probe must ask /readyz")

        # The config file: mounted where ACCORD_CONFIG points, keys the binary knows.
        config_path = env.get("ACCORD_CONFIG")
        config = {}
        if config_path:
            volume, key = mounted_file(config_path)
            if volume is None or "configMap" not in volume:
                fail(f"ACCORD_CONFIG={config_path} is not a mounted ConfigMap file")
            else:
                cm = config_maps[volume["configMap"]["name"]]
                config = tomllib.loads(cm["data"][key])
                for k in config:
                    if k.replace("_", "-") not in serve_flags:
                        fail(f"{config_path}: key {k} is no setting of `accord serve`")
                loaded = loads_config(binary, cm["data"][key])
                if loaded:
                    fail(f"the binary refuses {config_path}: {loaded}")
        # The bootstrap key file: a mounted Secret key.
        key_file = env.get("ACCORD_BOOTSTRAP_KEY_FILE")
        if key_file:
            volume, key = mounted_file(key_file)
            if volume is None or "secret" not in volume or key is None:
                fail(f"ACCORD_BOOTSTRAP_KEY_FILE={key_file} is not a mounted Secret key")
            elif not volume["secret"].get("defaultMode", 0o644) & 0o040:
                fail("the bootstrap key file is unreadable by the pod's group")

        # SQLite: its file on the mounted volume; PostgreSQL: both URLs.
        url = config.get("database_url")
        postgres = "ACCORD_DATABASE_URL" in env
        if postgres:
            if "ACCORD_MIGRATION_DATABASE_URL" not in env:
                fail("PostgreSQL mode without ACCORD_MIGRATION_DATABASE_URL")
        elif not (url and url.startswith("sqlite:/")):
            fail(f"SQLite mode: database_url {url!r} is not an absolute sqlite: path")
        else:
            directory = url[len("sqlite:"):].rsplit("/", 1)[0]
            volume = volumes.get(mounts.get(directory))
            if volume is None or "persistentVolumeClaim" not in volume:
                fail(f"SQLite mode: {directory} is not a mounted volume claim")
            if deployment["spec"].get("replicas") != 1 or by_kind.get("HorizontalPodAutoscaler"):
                fail("SQLite mode must run exactly one replica, without autoscaler")

        # The pod outlives its preStop sleep and the server's drain.
        sleep = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
        if sleep is None:
            fail("no preStop sleep")
        grace = int(config.get("shutdown_grace_seconds", 20))
        delay = int(config.get("drain_delay_seconds", 5))
        if spec.get("terminationGracePeriodSeconds", 30) <= (sleep or 0) + delay + grace:
            fail("terminationGracePeriodSeconds is not above preStop sleep + drain_delay_seconds"
                 " + shutdown_grace_seconds")

        # Checksums that roll the pods when their configuration changes.
        annotations = pod["metadata"].get("annotations", {})
        if "checksum/config" not in annotations:
            fail("no checksum/config annotation on the pods")

        # The Service: named ports onto the container's.
        (service,) = by_kind["Service"]
        service_ports = {p["name"]: p for p in service["spec"]["ports"]}
        if set(service_ports) != {"grpc", "metrics"}:
            fail(f"Service ports {sorted(service_ports)}, not grpc and metrics")
        for name, p in service_ports.items():
            if p["targetPort"] not in (name, ports.get(name)):
                fail(f"Service port {name} targets {p['targetPort']}")
        if not selects(service["spec"]["selector"], pod_labels):
            fail("the Service does not select the server's pods")

        # The migration job: `accord migrate` as the owner, before the rollout.
        for job in by_kind.get("Job", []):
            hooks = job["metadata"].get("annotations", {}).get("helm.sh/hook", "")
            if set(hooks.split(",")) != {"pre-install", "pre-upgrade"}:
                fail(f"Job {job['metadata']['name']}: hook {hooks!r}")
            job_spec = job["spec"]["template"]["spec"]
            (c,) = job_spec["containers"]
            check_process("Job", c, migrate_env, "migrate")
            check_pod_security("Job", job_spec)
            names = {e["name"] for e in c.get("env", [])}
            if {"ACCORD_DATABASE_URL", "ACCORD_MIGRATION_DATABASE_URL"} - names:
                fail("the migration job lacks a database URL")
            if selects(service["spec"]["selector"], job["spec"]["template"]["metadata"]["labels"]):
                fail("the Service would send calls to the migration job's pod")
        if postgres and not by_kind.get("Job"):
            fail("PostgreSQL mode without the migration job")

        for kind in ("PodDisruptionBudget", "NetworkPolicy"):
            for d in by_kind.get(kind, []):
                selector = d["spec"].get("selector", d["spec"].get("podSelector"))["matchLabels"]
                if not selects(selector, pod_labels):
                    fail(f"{kind} does not select the server's pods")
        for d in by_kind.get("NetworkPolicy", []):
            allowed = {p["port"] for rule in d["spec"]["ingress"] for p in rule["ports"]}
            if allowed != {"grpc", "metrics"}:
                fail(f"NetworkPolicy admits ports {allowed}")
        for d in by_kind.get("HorizontalPodAutoscaler", []):
            if d["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
                fail("the HPA scales another Deployment")
            if "replicas" in deployment["spec"]:
                fail("the Deployment fixes replicas under an HPA")
        # ServiceMonitor: a CRD kubernetes-validate has no schema for, so its
        # few fields are checked here.
        for d in by_kind.get("ServiceMonitor", []):
            if d["apiVersion"] != "monitoring.coreos.com/v1":
                fail(f"ServiceMonitor apiVersion {d['apiVersion']}")
            if not selects(d["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]):
                fail("the ServiceMonitor does not select the Service")
            for e in d["spec"]["endpoints"]:
                if e.get("port") not in service_ports or e.get("path") != "/metrics":
                    fail(f"ServiceMonitor endpoint {e} is not the Service's metrics port at /metrics")

    for e in errors:
        print(f"chart check: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"chart check: {len(rendered)} rendered value sets agree with the binary and the Dockerfile")


if __name__ == "__main__":
    main()
