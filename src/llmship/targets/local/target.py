"""The local target: a run's model behind a background `llmship serve` on this machine.

The server is its own process (it outlives the command that started it), recorded in
the state store with its pid, port and log file, so `status` and `destroy` find it the
same way they find a SageMaker endpoint. It speaks the same contracts (/ping,
/invocations, the Runtime API paths), so invoking it reads like invoking SageMaker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from llmship.errors import DeployError
from llmship.progress import RecordingReporter, Reporter
from llmship.sagemaker.cost import Cost
from llmship.state import Kind, Resource, StateStore, Status, state_path
from llmship.target import Action, Deployed, DeploymentStatus, DeployRequest, Plan

SERVER_KIND = Kind.LOCAL_SERVER  # the name tests and older callers import
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 35.0  # the server drains in-flight requests for up to 30 s


@dataclass(frozen=True)
class LocalSpec:
    source: Path
    port: int
    endpoint_kind: str
    log: Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # a reused pid belongs to someone else: not our server
        text = cmdline.read_bytes().replace(b"\0", b" ")
        return b"llmship" in text and b"serve" in text and b"<defunct>" not in text
    return True


def server_url(store: StateStore, deployment: str) -> str:
    """The URL the local deployment serves at, from its record (so callers such as
    `llmship invoke` need no --endpoint-url)."""
    for resource in store.resources(deployment):
        if resource.kind == Kind.LOCAL_SERVER and resource.details.get("url"):
            return resource.details["url"]
    raise DeployError(
        f"no local server recorded for {deployment} (or it is still starting); "
        "`llmship status` lists deployments"
    )


class LocalTarget:
    """`llmship serve` in the background, one per deployment."""

    name = "local"

    def __init__(self, store: StateStore, *, start_timeout_s: float = START_TIMEOUT_S):
        self.store = store.owned_by(self.name)
        self.start_timeout_s = start_timeout_s

    def plan(self, request: DeployRequest) -> Plan:
        from llmship.serve.background import free_port

        deploy = request.config.deploy
        if deploy.model_data or deploy.model_package_arn or deploy.hub_model_id:
            raise DeployError(
                "deploy.target: local serves a run's model; model_data, model_package_arn "
                "and hub_model_id need deploy.target: sagemaker"
            )
        if request.run is None:
            raise DeployError("nothing to deploy: give a run (llmship deploy RUN)")
        if deploy.kind == "async":
            raise DeployError(
                "deploy.kind: the local server has realtime and serverless limits, not async"
            )
        problems = []
        existing = self._record(request.name)
        if existing is not None and _alive(existing.details.get("pid", -1)):
            problems.append(
                f"{request.name} already runs locally at {existing.details.get('url')}; "
                f"`llmship destroy {request.name}` first"
            )
        port = free_port()
        logs = state_path().parent / "logs"
        spec = LocalSpec(request.run.root, port, deploy.kind, logs / f"{request.name}.log")
        action = Action(
            "create", Kind.LOCAL_SERVER, request.name, f"llmship serve on 127.0.0.1:{port}", None
        )
        return Plan(
            target=self.name,
            deployment=request.name,
            project=request.project,
            region="",
            kind=deploy.kind,
            actions=[action],
            cost=Cost(None, "runs on this machine: no charge"),
            problems=problems,
            spec=spec,
        )

    def apply(self, plan: Plan, *, reporter: Reporter | None = None) -> Deployed:
        from llmship.serve.background import wait_until_healthy

        plan.check()
        spec: LocalSpec = plan.spec
        reporter = reporter or RecordingReporter()
        url = f"http://127.0.0.1:{spec.port}"
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        details = {"port": spec.port, "url": url, "log": str(spec.log), "source": str(spec.source)}
        self.store.record_creating(
            Kind.LOCAL_SERVER, plan.deployment, plan.deployment, plan.project
        )
        command = [
            sys.executable, "-c", "from llmship.cli import main; main()", "serve",
            str(spec.source), "--port", str(spec.port), "--name", plan.deployment,
            "--endpoint-kind", spec.endpoint_kind,
        ]  # fmt: skip
        with spec.log.open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        details["pid"] = process.pid
        self.store.set_status(Kind.LOCAL_SERVER, plan.deployment, Status.CREATING, details=details)
        reporter.message(f"started llmship serve (pid {process.pid}), log: {spec.log}")
        try:
            wait_until_healthy(url, _LogProcess(process, spec.log), self.start_timeout_s)
        except Exception as exc:
            self._stop(process.pid)
            self.store.remove(Kind.LOCAL_SERVER, plan.deployment)
            raise DeployError(f"the local server did not become healthy: {exc}") from None
        self.store.set_status(Kind.LOCAL_SERVER, plan.deployment, Status.UP)
        return Deployed(plan.deployment, self.name, url, "running", None)

    def _record(self, deployment: str) -> Resource | None:
        return next(
            (r for r in self.store.resources(deployment) if r.kind == Kind.LOCAL_SERVER), None
        )

    def status(
        self, deployment: str, resources: list[Resource], *, idle_hours: float | None = None
    ) -> DeploymentStatus:
        record = self._record(deployment)
        if record is None:
            return DeploymentStatus(
                deployment, self.name, "-", "no server", "-", None, None, None, None, 0
            )
        url = record.details.get("url", "-")
        state = "stopped"
        if _alive(record.details.get("pid", -1)):
            try:
                ping = httpx.get(f"{url}/ping", timeout=5)
                state = "running" if ping.status_code == 200 else "starting"
            except httpx.TransportError:
                state = "not answering"
        return DeploymentStatus(
            deployment, self.name, url, state, "this machine", None, None, None, None,
            len(resources), (f"log: {record.details.get('log', '-')}",),
        )  # fmt: skip

    def refresh(self, resources: list[Resource]) -> list[Resource]:
        gone = [
            r
            for r in resources
            if r.kind == Kind.LOCAL_SERVER
            and r.status == Status.UP
            and not _alive(r.details.get("pid", -1))
        ]
        for resource in gone:
            self.store.remove(resource.kind, resource.name, resource.region)
        return gone

    def invoke(self, deployment: str, body: bytes, content_type: str = "application/json") -> bytes:
        record = self._record(deployment)
        if record is None:
            raise DeployError(f"no local deployment {deployment}; `llmship status` lists them")
        response = httpx.post(
            f"{record.details['url']}/invocations",
            content=body,
            headers={"Content-Type": content_type},
            timeout=120,
        )
        if response.status_code != 200:
            raise DeployError(
                f"{deployment} answered {response.status_code}: {response.text[:500]}"
            )
        return response.content

    def destroy(self, deployment: str, *, purge: bool = False) -> list[str]:
        record = self._record(deployment)
        if record is None:
            return []
        self.store.set_status(Kind.LOCAL_SERVER, deployment, Status.DELETING)
        self._stop(record.details.get("pid", -1))
        self.store.remove(Kind.LOCAL_SERVER, deployment)
        log = Path(record.details.get("log", ""))
        if purge and log.is_file():
            log.unlink()
        return [f"{Kind.LOCAL_SERVER} {deployment}"]

    @staticmethod
    def _stop(pid: int) -> None:
        """SIGTERM (the server drains), then SIGKILL if it outlives the grace period."""
        if pid <= 0 or not _alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:  # not our child: poll it
                if not _alive(pid):
                    return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


class _LogProcess:
    """A Popen whose output went to a file, as wait_until_healthy reads it."""

    def __init__(self, process: subprocess.Popen, log: Path):
        self.process, self.log = process, log
        self.stdout = None

    def poll(self):
        code = self.process.poll()
        if code is not None:
            self.stdout = _Tail(self.log)
        return code

    @property
    def returncode(self):
        return self.process.returncode


class _Tail:
    def __init__(self, path: Path):
        self.path = path

    def read(self) -> str:
        return self.path.read_text(errors="replace")[-4000:] if self.path.exists() else ""
